#!/usr/bin/env bash
# The Python package's suite (python/tests, pytest) against Redis and against Valkey:
# a venv under target/, the package installed from ./python as a user would
# (`pip install ./python`), the Rust fleet worker built for the mixed-fleet test.
#   scripts/test-python.sh          # both servers
#   scripts/test-python.sh --lint   # ruff and mypy on the package only
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

venv="target/py-venv"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

# Debian's python3 needs python3-venv for `-m venv` (and its pip).
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "test-python: apt-get install python3-venv" >&2
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends python3-venv python3-pip >/dev/null
fi
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q maturin pytest redis ruff mypy

if [ "${1:-}" = "--lint" ]; then
  (cd python && "../$venv/bin/ruff" check . && "../$venv/bin/ruff" format --check . \
    && "../$venv/bin/mypy")
  exit 0
fi

scripts/install-servers.sh >/dev/null
redis_bin="$(command -v redis-server)"
valkey_bin="$(scripts/valkey-bin.sh)"

echo "== python: pip install ./python =="
"$venv/bin/pip" install -q ./python
cargo build -q --example fleet_worker
export FLEET_WORKER_BIN="${CARGO_TARGET_DIR:-target}/debug/examples/fleet_worker"
FLEET_WORKER_BIN="$(realpath "$FLEET_WORKER_BIN")"

failed=()
for bin in "$redis_bin" "$valkey_bin"; do
  label="python tests against $("$bin" --version | awk '{ v = $3; sub(/^v=/, "", v); print $1, v }')"
  echo
  echo "== $label =="
  # From python/tests (not python/): the installed package is imported, not the source tree.
  if ! (cd python/tests && REDIS_SERVER_BIN="$bin" "../../$venv/bin/pytest" -q -p no:cacheprovider .); then
    failed+=("$label")
  fi
done
if [ "${#failed[@]}" -ne 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}"
  exit 1
fi
