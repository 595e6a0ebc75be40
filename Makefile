.PHONY: demo test lint bench

demo:
	scripts/demo.sh

test:
	scripts/test.sh

# The library, the redsem crate and the Python package's crate (workspace members), with
# every feature and with none (not even the default `tracing`); ruff and mypy on the
# Python package (installed into target/py-venv by scripts/test-python.sh).
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --features cluster,tls,tracing -- -D warnings
	cargo clippy --workspace --all-targets --no-default-features -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --features cluster,tls,tracing
	scripts/test-python.sh --lint

bench:
	scripts/bench-report.sh
