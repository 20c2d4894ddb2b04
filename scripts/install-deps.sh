#!/usr/bin/env bash
# Installs every Debian package pybuildkit's demo, tests and benchmarks need on a fresh
# Debian 12 machine (run as root), plus the foreign-architecture busybox-static packages
# that the fixture base image is built from, and the test venv.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  runc crun rootlesskit slirp4netns uidmap fuse-overlayfs
  qemu-user-static binfmt-support
  docker-registry skopeo umoci apache2-utils openssl
  systemd-container debootstrap busybox-static iproute2 git tar xz-utils
  protobuf-compiler isal tmux
  python3 python3-venv python3-pip
  python3-grpcio python3-protobuf python3-zstandard python3-pyroute2
  python3-httpx python3-h2 python3-dbus-next python3-sdnotify
  ca-certificates openssh-client
)

export DEBIAN_FRONTEND=noninteractive
need_install=0
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_install=1
done
# A mirror mid-sync can fail one index (seen with bookworm-security); retry, then go on with
# whatever lists we have: the packages we need come from the main archive.
apt_update() {
  for attempt in 1 2 3; do
    apt-get update -qq && return 0
    sleep $((attempt * 5))
  done
  echo "warning: apt-get update did not fully succeed; continuing with the lists we have" >&2
}

if [ "$need_install" = 1 ]; then
  apt_update
  apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
fi

# Foreign busybox-static builds for the multi-arch fixture image.
FOREIGN=(arm64 s390x ppc64el armhf i386)
cache=/var/cache/pybuildkit-fixtures
mkdir -p "$cache"
missing=()
for a in "${FOREIGN[@]}"; do
  ls "$cache"/busybox-static_*_"$a".deb >/dev/null 2>&1 || missing+=("$a")
done
if [ "${#missing[@]}" -gt 0 ]; then
  for a in "${missing[@]}"; do dpkg --add-architecture "$a"; done
  apt_update
  (cd "$cache" && for a in "${missing[@]}"; do apt-get download -qq "busybox-static:$a" 2>/dev/null; done)
fi
native=$(dpkg --print-architecture)
ls "$cache"/busybox-static_*_"$native".deb >/dev/null 2>&1 || (cd "$cache" && apt-get download -qq "busybox-static:$native" 2>/dev/null)

# QEMU handlers for foreign-architecture steps: on machines without systemd as PID 1 nobody
# mounts binfmt_misc or loads Debian's qemu-user-static entries, so do it here (idempotent).
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || true
fi
if [ -e /proc/sys/fs/binfmt_misc/register ] && [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  update-binfmts --enable >/dev/null 2>&1 || true
fi

# The udev rule that opens /dev/net/tun does not run on every machine (HOST-NOTES: Rootless).
[ -e /dev/net/tun ] && chmod 0666 /dev/net/tun || true

# Test venv on Debian's python with Debian's libraries; test tools from PyPI.
venv=.venv
if [ ! -x "$venv/bin/python" ]; then
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check pytest pytest-timeout isal py-spy hypothesis ruff==0.17.6 mypy==2.4.1
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
