#!/usr/bin/env python3
"""Turn bench/run.sh's results.tsv into a markdown table (stdout), and with
--write-doc replace the generated block of docs/PERFORMANCE.md (between
<!-- bench:core:begin --> and <!-- bench:core:end -->), leaving the rest of
the file alone."""
import argparse
import datetime
import os
import platform
import statistics
import sys

BEGIN = "<!-- bench:core:begin -->"
END = "<!-- bench:core:end -->"

# row id -> (label, ferry command, reference command, goal ratio)
VERSUS = [
    ("save", "save", "`ferry save docker-archive:big.tar -o DIR`",
     "`zstd -3 -T0 < big.tar > f && openssl dgst -sha256 f`", 1.10),
    ("sealed_save", "sealed save", "`ferry save ... --sign KEY -r R`",
     "`zstd -3 -T0 < big.tar \\| age -r R > f && openssl dgst -sha256 f`", 1.10),
    ("verify_sums", "checksum-only verify", "`ferry verify SEALED -k PUB` (no -i)",
     "`openssl dgst -sha256 f.tar.zst.age`", 1.10),
    ("verify_full", "full verify", "`ferry verify DIR`",
     "`zstd -d < f \\| openssl dgst -sha256`", 1.20),
    ("load", "load", "`ferry load DIR --into oci:OUT --allow-unsigned`",
     "`zstd -d < f \\| tar -x -C OUT`", 1.20),
]
SEALING = [
    ("sealed_save", "save", "`save --sign -r` vs `save`", 1.10),
    ("sealed_load", "load", "`load -k -i` (decrypting) vs `load`", 1.10),
]


def load_results(path):
    data = {}
    with open(path) as f:
        for line in f:
            row, who, us, rss, cpu = line.rstrip("\n").split("\t")
            usr, sys_ = cpu.split("+")
            data.setdefault((row, who), []).append((int(us) / 1e6, int(rss), float(usr) + float(sys_)))
    return data


def stats(samples):
    walls = [s[0] for s in samples]
    return min(walls), statistics.median(walls), max(s[1] for s in samples), statistics.median(s[2] for s in samples)


def fmt_s(x):
    return f"{x:.2f}" if x >= 1 else f"{x:.3f}"


def verdict(ratio, goal):
    return "ok" if ratio <= goal else "**missed**"


def mib(path):
    return os.path.getsize(path) / (1 << 20)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--big-input")
    ap.add_argument("--artifact", required=True)
    ap.add_argument("--runs", type=int, required=True)
    ap.add_argument("--size")
    ap.add_argument("--big")
    ap.add_argument("--load-before", default="?")
    ap.add_argument("--load-after", default="?")
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--priority", action="store_true")
    ap.add_argument("--write-doc")
    a = ap.parse_args()
    data = load_results(a.results)

    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = []
    mode = " (--small: CI smoke mode, numbers not meaningful)" if a.small else ""
    flags = (" --small" if a.small else "") + (" --priority" if a.priority else "")
    prio = (" --priority: own session, autogroup nice -10, measured commands under `nice -n -10`."
            if a.priority else "")
    out.append(f"Run {now}{mode}: `bash bench/run.sh{flags}`, "
               f"{os.cpu_count()} cores ({cpu}), {platform.release()}. "
               f"Input {mib(a.input):.0f} MiB docker-archive, artifact {mib(a.artifact):.0f} MiB "
               f"(zstd -3); warm page cache; {a.runs} runs, min / median seconds, ferry and "
               f"reference interleaved. Load average (1/5/15 min) before: {a.load_before}, "
               f"after: {a.load_after}.{prio}")
    out.append("")
    out.append("| operation | ferry | reference | ferry s (min / med) | ref s (min / med) | ratio min (med) | CPU s ferry / ref | goal | |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    for row, label, fcmd, rcmd, goal in VERSUS:
        f, r = data.get((row, "ferry")), data.get((row, "ref"))
        if not f or not r:
            continue
        fmin, fmed, _, fcpu = stats(f)
        rmin, rmed, _, rcpu = stats(r)
        ratio, ratio_med = fmin / rmin, fmed / rmed
        out.append(f"| {label} | {fcmd} | {rcmd} | {fmt_s(fmin)} / {fmt_s(fmed)} | {fmt_s(rmin)} / {fmt_s(rmed)} "
                   f"| {ratio:.2f} ({ratio_med:.2f}) | {fcpu:.2f} / {rcpu:.2f} | ≤ {goal:.2f} | {verdict(ratio, goal)} |")
    out.append("")
    out.append("| sealing | comparison | sealed s (min / med) | plain s (min / med) | ratio min (med) | goal | |")
    out.append("|---|---|---|---|---|---|---|")
    for row, base, label, goal in SEALING:
        s, p = data.get((row, "ferry")), data.get((base, "ferry"))
        if not s or not p:
            continue
        smin, smed, _, _ = stats(s)
        pmin, pmed, _, _ = stats(p)
        out.append(f"| {row.replace('_', ' ')} | {label} | {fmt_s(smin)} / {fmt_s(smed)} | {fmt_s(pmin)} / {fmt_s(pmed)} "
                   f"| {smin / pmin:.2f} ({smed / pmed:.2f}) | ≤ {goal:.2f} | {verdict(smin / pmin, goal)} |")
    out.append("")
    rows = []
    for op, small_row, big_row in (("save", "save", "rss_big_save"), ("load", "load", "rss_big_load")):
        s = data.get((small_row, "ferry"))
        b = data.get((big_row, "ferry"))
        if not s:
            continue
        s_rss = max(x[1] for x in s) / 1024
        if b:
            b_rss = max(x[1] for x in b) / 1024
            b_wall = b[0][0]
            growth = b_rss / s_rss
            ok = s_rss <= 100 and b_rss <= 100 and abs(growth - 1) <= 0.10
            rows.append(f"| {op} | {s_rss:.1f} | {b_rss:.1f} ({fmt_s(b_wall)} s) | {growth:.2f} | ≤ 100 MiB, within 10 % | {'ok' if ok else '**missed**'} |")
        else:
            rows.append(f"| {op} | {s_rss:.1f} | – | – | ≤ 100 MiB | {'ok' if s_rss <= 100 else '**missed**'} |")
    big_label = f"{mib(a.big_input):.0f} MiB input" if a.big_input and os.path.exists(a.big_input) else "big input"
    out.append(f"| peak RSS (MiB) | {mib(a.input):.0f} MiB input | {big_label} | big / small | goal | |")
    out.append("|---|---|---|---|---|---|")
    out.extend(rows)
    text = "\n".join(out) + "\n"
    sys.stdout.write(text)

    if a.write_doc:
        block = f"{BEGIN}\n{text}{END}"
        path = a.write_doc
        if os.path.exists(path):
            doc = open(path).read()
        else:
            doc = "# Performance\n"
        if BEGIN in doc and END in doc:
            head, rest = doc.split(BEGIN, 1)
            _, tail = rest.split(END, 1)
            doc = head + block + tail
        else:
            doc = doc.rstrip("\n") + "\n\n## Core pipeline (bench/run.sh)\n\n" + block + "\n"
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(doc)
        os.replace(tmp, path)
        print(f"bench: updated {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
