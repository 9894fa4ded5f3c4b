# Rill developer entry points. `make test` is the one test command: the
# README and .ci/run both call it.
CARGO ?= cargo

.PHONY: test test-rust build release fmt lint

test: lint test-rust

test-rust:
	$(CARGO) test --workspace --all-targets

build:
	$(CARGO) build --workspace --all-targets

release:
	$(CARGO) build --release --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
