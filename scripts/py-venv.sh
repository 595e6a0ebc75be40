#!/usr/bin/env bash
# The tools venv (target/py-venv: maturin, ruff, mypy...): made if missing, then the given
# pip packages installed into it. Prints its path.
#   scripts/py-venv.sh <package>...
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv="target/py-venv"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
# Debian's python3 needs python3-venv for `-m venv` (and its pip).
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "py-venv: apt-get install python3-venv" >&2
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends python3-venv python3-pip >/dev/null
fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
[ "$#" -eq 0 ] || "$venv/bin/pip" install -q "$@" >&2
echo "$venv"
