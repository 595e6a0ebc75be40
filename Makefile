.PHONY: demo test lint bench wheel

demo:
	scripts/demo.sh

test:
	scripts/test.sh

# The Python package's wheel: one abi3 wheel (CPython 3.9+) for manylinux2014 (glibc 2.17)
# in target/wheels/, linked through zig (the ziglang package from PyPI), no Docker; checked
# with auditwheel. `make test` installs it into CPython 3.9 and 3.13 (pyenv).
wheel:
	scripts/build-wheel.sh

# The library, the redsem crate and the Python package's crate (workspace members), with
# every feature and with none (not even the default `tracing`); ruff and mypy on the
# Python package (installed into target/py-venv by scripts/lint-python.sh).
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --features cluster,tls,tracing -- -D warnings
	cargo clippy --workspace --all-targets --no-default-features -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --features cluster,tls,tracing
	scripts/lint-python.sh

bench:
	scripts/bench.sh
