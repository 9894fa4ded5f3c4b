# Rill developer entry points. `make test` is the one test command: the
# README and .ci/run both call it.
CARGO ?= cargo

.PHONY: test test-rust quickstart-smoke build release fmt lint

test: lint test-rust quickstart-smoke

test-rust:
	$(CARGO) test --workspace --all-targets

# The README's quick start, in debug and without waiting for Ctrl-C.
quickstart-smoke:
	scripts/quickstart.sh --smoke

build:
	$(CARGO) build --workspace --all-targets

release:
	$(CARGO) build --release --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
