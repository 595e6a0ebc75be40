.PHONY: demo test lint bench

demo:
	scripts/demo.sh

test:
	scripts/test.sh

# The library and the redsem crate (a workspace member), with every feature and with none
# (not even the default `tracing`).
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --features cluster,tls,tracing -- -D warnings
	cargo clippy --workspace --all-targets --no-default-features -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --features cluster,tls,tracing

bench:
	scripts/bench-report.sh
