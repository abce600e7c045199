#!/usr/bin/env bash
# Install the Debian packages that ferry's tests, fixtures and interop checks need,
# then the one test tool that is no Debian package: ferro-oci-server, an OCI
# distribution 1.1 registry with the referrers API (tests/registry_referrers_api.rs),
# built with cargo into target/tools of the repository (CI caches the repository,
# nothing outside it).
# Idempotent: a machine that already has every package runs no apt at all, and one
# that has the registry at the pinned version runs no cargo install.
# Works as root with no stdin (CI). Usage: scripts/install-deps.sh
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
FERRO_OCI_VERSION=1.0.0

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

install_apt_packages() {
  if [ ${#missing_pkgs[@]} -eq 0 ] && [ ${#missing_cmds[@]} -eq 0 ]; then
    echo "install-deps: all packages present"
    return 0
  fi
  echo "install-deps: missing packages: ${missing_pkgs[*]:-none}; missing commands: ${missing_cmds[*]:-none}"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo=(sudo -n); else
      echo "install-deps: not root and no sudo; install: ${PACKAGES[*]}" >&2; exit 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update </dev/null
  # Install the whole list: apt skips what is already there.
  "${sudo[@]}" apt-get install -y --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${PACKAGES[@]}" </dev/null
  local still=()
  for c in "${COMMANDS[@]}"; do have_cmd "$c" || still+=("$c"); done
  if [ ${#still[@]} -ne 0 ]; then
    echo "install-deps: still missing after install: ${still[*]}" >&2
    exit 1
  fi
}

# ferro-oci-server at the pinned version in target/tools (cargo's own record
# of what it installed there says which version is present).
install_ferro_oci_server() {
  local root="$repo/target/tools"
  if [ -x "$root/bin/ferro-oci-server" ] &&
    cargo install --list --root "$root" 2>/dev/null | grep -qx "ferro-oci-server v$FERRO_OCI_VERSION:"; then
    echo "install-deps: ferro-oci-server $FERRO_OCI_VERSION present"
    return 0
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    echo "install-deps: cargo not found; it builds ferro-oci-server into $root" >&2; exit 1
  fi
  echo "install-deps: building ferro-oci-server $FERRO_OCI_VERSION into $root (about a minute on 2 cores)"
  cargo install ferro-oci-server --version "$FERRO_OCI_VERSION" --locked --root "$root" </dev/null
}

install_apt_packages
install_ferro_oci_server
echo "install-deps: done"
