#!/usr/bin/env bash
# The Python package's suite (python/tests, pytest) as users get the package: the abi3
# manylinux2014 wheel of `make wheel` (scripts/build-wheel.sh) installed, no source build,
# into a venv of the oldest and of the newest CPython this machine has under pyenv (3.9 and
# 3.13), each run against Redis and against Valkey. The Rust fleet worker is built for the
# mixed-fleet test.
#   scripts/test-python.sh          # the wheel, then both Pythons x both servers
#   scripts/test-python.sh --lint   # ruff and mypy on the package only
# PYTHONS="/path/to/python3.9 /path/to/python3.13" overrides the interpreters.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

tools="target/py-venv"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

# Debian's python3 needs python3-venv for `-m venv` (and its pip).
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "test-python: apt-get install python3-venv" >&2
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends python3-venv python3-pip >/dev/null
fi
if [ ! -x "$tools/bin/python" ]; then
  python3 -m venv "$tools"
fi

if [ "${1:-}" = "--lint" ]; then
  "$tools/bin/pip" install -q ruff mypy redis pytest
  (cd python && "../$tools/bin/ruff" check . && "../$tools/bin/ruff" format --check . \
    && "../$tools/bin/mypy")
  exit 0
fi

# The oldest 3.9.x and the newest 3.13.x that pyenv has.
pick() { # pick <minor>: the newest patch release of that minor version under pyenv
  local root="${PYENV_ROOT:-$HOME/.pyenv}/versions" found=""
  for dir in "$root/$1".*; do
    [ -x "$dir/bin/python3" ] && found="$dir/bin/python3"
  done
  echo "$found"
}
if [ -n "${PYTHONS:-}" ]; then
  read -r -a pythons <<<"$PYTHONS"
else
  pythons=("$(pick 3.9)" "$(pick 3.13)")
fi
for py in "${pythons[@]}"; do
  if [ -z "$py" ] || [ ! -x "$py" ]; then
    echo "test-python: CPython 3.9 and 3.13 are needed (pyenv install 3.9 3.13, or set" \
      "PYTHONS); found: ${pythons[*]}" >&2
    exit 1
  fi
done

scripts/install-servers.sh >/dev/null
redis_bin="$(command -v redis-server)"
valkey_bin="$(scripts/valkey-bin.sh)"

echo "== python: the wheel (scripts/build-wheel.sh) =="
wheel="$(scripts/build-wheel.sh)"
echo "$wheel"
cargo build -q -p tools
export FLEET_WORKER_BIN="${CARGO_TARGET_DIR:-target}/debug/tools"
FLEET_WORKER_BIN="$(realpath "$FLEET_WORKER_BIN")"

failed=()
for py in "${pythons[@]}"; do
  version="$("$py" -c 'import platform; print(platform.python_version())')"
  venv="target/py-test-$version"
  rm -rf "$venv"
  "$py" -m venv "$venv"
  # The wheel file itself: pip cannot build anything from it.
  "$venv/bin/pip" install -q "$wheel" pytest redis
  for bin in "$redis_bin" "$valkey_bin"; do
    label="python $version tests against $("$bin" --version | awk '{ v = $3; sub(/^v=/, "", v); print $1, v }')"
    echo
    echo "== $label =="
    # From python/tests (not python/): the installed package is imported, not the source tree.
    if ! (cd python/tests && REDIS_SERVER_BIN="$bin" "../../$venv/bin/pytest" -q -p no:cacheprovider .); then
      failed+=("$label")
    fi
  done
done
if [ "${#failed[@]}" -ne 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}"
  exit 1
fi
