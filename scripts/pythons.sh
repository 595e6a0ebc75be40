#!/usr/bin/env bash
# The interpreters the Python suite runs on, one per line: the newest 3.9.x and the newest
# 3.13.x under pyenv (the oldest and newest CPython the package supports), or $PYTHONS.
set -euo pipefail
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
    echo "pythons: CPython 3.9 and 3.13 are needed (pyenv install 3.9 3.13, or set" \
      "PYTHONS); found: ${pythons[*]}" >&2
    exit 1
  fi
  echo "$py"
done
