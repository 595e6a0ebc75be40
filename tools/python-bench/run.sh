#!/usr/bin/env bash
# The Python comparison benchmark: a venv of its own (target/py-bench-venv) with this
# package, redis-py and pottery (PyPI), the Rust side built in release, one run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
venv=target/py-bench-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check maturin redis pottery ./python
cargo build -q --release -p tools
cd tools/python-bench && "../../$venv/bin/python" uncontended.py "$@"
