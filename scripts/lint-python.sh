#!/usr/bin/env bash
# ruff (lint and format) and mypy on the Python package (`make lint`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv="$(scripts/py-venv.sh ruff mypy redis pytest)"
cd python
"../$venv/bin/ruff" check .
"../$venv/bin/ruff" format --check .
"../$venv/bin/mypy"
