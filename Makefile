.PHONY: demo test lint bench

demo:
	scripts/demo.sh

test:
	scripts/test.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets --features cluster,tls,tracing -- -D warnings
	cargo clippy --all-targets --no-default-features -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --features cluster,tls,tracing

bench:
	scripts/bench-report.sh
