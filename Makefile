.PHONY: demo test lint bench

demo:
	scripts/demo.sh

test:
	scripts/test.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps

bench:
	scripts/bench-report.sh
