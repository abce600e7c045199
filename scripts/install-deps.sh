#!/usr/bin/env bash
# Install the Debian packages that ferry's tests, fixtures and interop checks need.
# Idempotent: a machine that already has every package runs no apt at all.
# Works as root with no stdin (CI). Usage: scripts/install-deps.sh
set -euo pipefail

PACKAGES=(
  docker.io podman buildah skopeo umoci containerd
  vsftpd openssh-server openssh-client nginx-light
  age minisign lftp busybox-static curl zstd gzip
  uidmap iptables python3 bsdutils pkg-config libssl-dev openssl time
  docker-registry apache2-utils protobuf-compiler
)
# Commands that must resolve afterwards (absolute paths where a PATH lookup could
# find something else, e.g. a newer docker client in /usr/local/bin).
COMMANDS=(
  /usr/bin/docker /usr/sbin/dockerd podman buildah skopeo umoci containerd ctr
  /usr/sbin/vsftpd /usr/sbin/sshd ssh sftp ssh-keygen /usr/sbin/nginx
  age age-keygen minisign lftp /bin/busybox curl zstd gzip
  docker-registry htpasswd protoc
  newuidmap iptables python3 sha256sum /usr/bin/openssl /usr/sbin/useradd /usr/sbin/chpasswd ssh-agent ssh-add /usr/bin/time script
)

have_cmd() {
  case "$1" in
    /*) [ -x "$1" ] ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
  esac
}

missing_pkgs=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing_pkgs+=("$p")
done
missing_cmds=()
for c in "${COMMANDS[@]}"; do
  have_cmd "$c" || missing_cmds+=("$c")
done

if [ ${#missing_pkgs[@]} -eq 0 ] && [ ${#missing_cmds[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi

echo "install-deps: missing packages: ${missing_pkgs[*]:-none}; missing commands: ${missing_cmds[*]:-none}"
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=(sudo -n); else
    echo "install-deps: not root and no sudo; install: ${PACKAGES[*]}" >&2; exit 1
  fi
else
  SUDO=()
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update </dev/null
# Install the whole list: apt skips what is already there.
"${SUDO[@]}" apt-get install -y --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
  "${PACKAGES[@]}" </dev/null

still=()
for c in "${COMMANDS[@]}"; do have_cmd "$c" || still+=("$c"); done
if [ ${#still[@]} -ne 0 ]; then
  echo "install-deps: still missing after install: ${still[*]}" >&2
  exit 1
fi
echo "install-deps: done"
