#!/usr/bin/env python3
"""Fill a Docker build context with files found on this machine, by kind.

    pick-files.py CONTEXT_DIR TOTAL_MB [--kinds libs,text,...] [--seed WORD]

Four layer directories, each a realistic kind of image content:
  libs/        shared libraries (*.so*)                         35 %
  text/        source, headers, docs, scripts (text)            30 %
  compressed/  already-compressed data (.gz .xz .zst .crate...) 20 %
  small/       many small files (< 4 KiB)                       15 %
Files are sampled in a fixed pseudo-random order, so the same machine gives the same context.
A file's first use is a hard link (no copy); when the machine has fewer
distinct files than the budget, later rounds are real copies under r2/, r3/...
(distinct inodes, so Docker stores their bytes again instead of tar links).
"""
import os
import random
import shutil
import stat
import sys

ROOTS = ["/usr/lib", "/usr/share", "/usr/include", "/usr/libexec", "/usr/bin",
         "/root/.cargo/registry", "/root/.rustup", "/opt"]
COMPRESSED = (".gz", ".xz", ".zst", ".bz2", ".crate", ".deb", ".zip", ".jar",
              ".png", ".jpg", ".jpeg", ".woff", ".woff2", ".lz4", ".tgz", ".whl")
TEXT = (".rs", ".c", ".h", ".hpp", ".cc", ".py", ".pl", ".pm", ".sh", ".txt",
        ".md", ".html", ".htm", ".css", ".js", ".json", ".toml", ".xml", ".conf",
        ".rst", ".yml", ".yaml", ".svg", ".in", ".am", ".tcl", ".rb", ".go")
SHARES = {"libs": 0.35, "text": 0.30, "compressed": 0.20, "small": 0.15}
SMALL = 4096
MAX_FILE = 256 << 20


def kind(path, size):
    name = os.path.basename(path)
    if size < SMALL:
        return "small"
    if ".so" in name and (name.endswith(".so") or ".so." in name):
        return "libs"
    if name.endswith(COMPRESSED):
        return "compressed"
    if name.endswith(TEXT):
        return "text"
    return None


def scan(need):
    """Candidates per kind; stops early once every kind has `need` bytes of them."""
    found = {k: [] for k in SHARES}
    have = {k: 0 for k in SHARES}
    for root in ROOTS:
        if all(have[k] >= need[k] for k in SHARES):
            break
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            # never descend into our own outputs or build trees
            dirnames[:] = [d for d in dirnames if d not in ("target", ".git")]
            for f in sorted(filenames):
                p = os.path.join(dirpath, f)
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode) or st.st_size == 0 or st.st_size > MAX_FILE:
                    continue
                if not os.access(p, os.R_OK):
                    continue
                k = kind(p, st.st_size)
                if k:
                    found[k].append((p, st.st_size, st.st_dev))
                    have[k] += st.st_size
    return found


def main():
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("context")
    ap.add_argument("total_mb", type=float)
    ap.add_argument("--kinds", default=",".join(SHARES), help="which layer directories (shares are rescaled)")
    ap.add_argument("--seed", default="ferry-bench", help="another seed picks other files first")
    a = ap.parse_args()
    ctx = a.context
    kinds = [k for k in a.kinds.split(",") if k]
    for k in kinds:
        if k not in SHARES:
            sys.exit(f"pick-files: unknown kind {k!r} (known: {', '.join(SHARES)})")
    scale = sum(SHARES[k] for k in kinds)
    shares = {k: SHARES[k] / scale for k in kinds}
    budget_total = int(a.total_mb * (1 << 20))
    # Enough candidates for a varied sample: three times each budget.
    found = scan({k: 3 * int(budget_total * shares.get(k, 0)) for k in SHARES})
    ctx_dev = os.stat(ctx).st_dev
    seen_inodes = set()
    summary = []
    for k, share in shares.items():
        files = found[k]
        # A fixed-seed shuffle: a sample from all over the machine, same every run.
        random.Random(f"{a.seed}-{k}").shuffle(files)
        if not files:
            sys.exit(f"pick-files: no {k} files found under {ROOTS}")
        budget = int(budget_total * share)
        used, count, rnd = 0, 0, 1
        while used < budget:
            added = skipped = 0
            for src, size, dev in files:
                if used >= budget:
                    break
                if used + size > budget and size > SMALL:
                    skipped += 1
                    continue  # keep to the budget: leave room for smaller files
                dst = os.path.join(ctx, k, f"r{rnd}", src.lstrip("/"))
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                ino = os.stat(src).st_ino
                linked = False
                if rnd == 1 and dev == ctx_dev and (dev, ino) not in seen_inodes:
                    try:
                        os.link(src, dst)
                        linked = True
                    except OSError:
                        pass
                if not linked:
                    shutil.copyfile(src, dst)
                seen_inodes.add((dev, ino))
                used += size
                count += 1
                added += 1
            rnd += 1
            if added == 0 or skipped:
                break  # the rest of the budget is smaller than any file left
        summary.append(f"{k}: {count} files, {used / (1 << 20):.0f} MiB, {rnd - 1} round(s)")
    print("pick-files: " + "; ".join(summary))


if __name__ == "__main__":
    main()
