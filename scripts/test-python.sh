#!/usr/bin/env bash
# The Python package's suite (python/tests, pytest) as users get the package: the abi3
# manylinux2014 wheel of `make wheel` (scripts/build-wheel.sh) installed, no source build,
# into a venv of the oldest and of the newest CPython this machine has under pyenv
# (scripts/pythons.sh: 3.9 and 3.13), each run against Redis and against Valkey. The tools
# binary is built for the mixed-fleet test (`tools fleet-worker`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
mapfile -t pythons < <(scripts/pythons.sh)
scripts/install-servers.sh >/dev/null
source scripts/common.sh

echo "== python: the wheel (scripts/build-wheel.sh) =="
wheel="$(scripts/build-wheel.sh)"
echo "$wheel"
cargo build -q -p tools
FLEET_WORKER_BIN="$(realpath "${CARGO_TARGET_DIR:-target}/debug/tools")"
export FLEET_WORKER_BIN

pytest_on() { # pytest_on <venv> <server binary>
  # From python/tests (not python/): the installed package is imported, not the source.
  (cd python/tests && REDIS_SERVER_BIN="$2" "../../$1/bin/pytest" -q -p no:cacheprovider .)
}
for py in "${pythons[@]}"; do
  version="$("$py" -c 'import platform; print(platform.python_version())')"
  venv="target/py-test-$version"
  rm -rf "$venv"
  "$py" -m venv "$venv"
  # The wheel file itself: pip cannot build anything from it.
  "$venv/bin/pip" install -q "$wheel" pytest redis
  for bin in "$redis_bin" "$valkey_bin"; do
    step "python $version tests against $(server_name "$bin")" pytest_on "$venv" "$bin"
  done
done
summary
