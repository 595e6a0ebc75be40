#!/usr/bin/env bash
# The Python package's wheel, as it ships: one abi3 wheel (CPython 3.9 and later) for
# manylinux2014 (glibc 2.17), in target/wheels/. No Docker: maturin links against glibc
# 2.17 through zig (the `ziglang` package from PyPI), and `auditwheel show` checks the tag.
#   scripts/build-wheel.sh        # prints the wheel's path last
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

tools="$(scripts/py-venv.sh 'maturin>=1.9.4,<2' ziglang auditwheel)"

out="${CARGO_TARGET_DIR:-target}/wheels"
rm -f "$out"/redis_semaphore_rs-*.whl
# maturin finds zig as `python -m ziglang` of the python on the PATH.
PATH="$PWD/$tools/bin:$PATH" "$tools/bin/maturin" build --release --zig \
  --compatibility manylinux2014 -m python/Cargo.toml --out "$out" \
  -i "$tools/bin/python" >&2
wheels=("$out"/redis_semaphore_rs-*.whl)
if [ "${#wheels[@]}" -ne 1 ]; then
  echo "build-wheel: expected one wheel in $out, found ${#wheels[@]}" >&2
  exit 1
fi
wheel="${wheels[0]}"
case "$wheel" in
  *-cp39-abi3-*manylinux_2_17_x86_64*) ;;
  *) echo "build-wheel: not an abi3 manylinux_2_17 wheel: $wheel" >&2; exit 1 ;;
esac
"$tools/bin/auditwheel" show "$wheel" >&2
# auditwheel's verdict: the wheel is consistent with manylinux_2_17 (or older).
if ! "$tools/bin/auditwheel" show "$wheel" 2>&1 | tr '\n' ' ' \
  | grep -Eq 'consistent with the following platform tag: *"manylinux_2_(5|12|17)_x86_64"'; then
  echo "build-wheel: auditwheel does not place $wheel at manylinux_2_17 or older" >&2
  exit 1
fi
echo "$wheel"
