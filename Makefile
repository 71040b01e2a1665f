# arbor: `make demo` runs the main job on the bundled example, `make test` runs every check CI runs.
# Both install the system packages first (scripts/install-deps is idempotent and quick when done).

CARGO ?= cargo
# Fuzzing time per target, in seconds (make fuzz).
FUZZ_SECONDS ?= 60
ARBOR := target/debug/arbor

.PHONY: all deps build demo test unit lint bench fuzz clean

all: build

deps:
	@scripts/install-deps

build:
	$(CARGO) build --workspace

demo: deps build
	@echo "== arbor treefile check examples/manifest.yaml"
	@$(ARBOR) treefile check examples/manifest.yaml
	@echo
	@echo "== arbor treefile render examples/manifest.yaml --arch aarch64 --var prod=true (first 40 lines)"
	@$(ARBOR) treefile render examples/manifest.yaml --arch aarch64 --var prod=true | head -n 40
	@echo "   ..."
	@echo
	@echo "== arbor lockfile show examples/manifest-lock.x86_64.json examples/manifest-lock.overrides.yaml"
	@$(ARBOR) lockfile show examples/manifest-lock.x86_64.json examples/manifest-lock.overrides.yaml

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit:
	@if command -v cargo-nextest >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		$(CARGO) test --workspace --no-fail-fast; \
	fi

test: deps lint unit

bench:
	$(CARGO) bench -p treefiles --bench render

# Runs every fuzz target for FUZZ_SECONDS each (needs cargo-fuzz; nightly features via RUSTC_BOOTSTRAP).
fuzz:
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	@mkdir -p fuzz/corpus/treefile fuzz/corpus/lockfile
	@for file in treefiles/tests/fixtures/*/*.yaml treefiles/tests/fixtures/*/manifests/*.yaml examples/*.yaml; do \
		{ printf '\000'; cat "$$file"; } > fuzz/corpus/treefile/seed-$$(echo $$file | tr / -); done
	@for file in treefiles/tests/fixtures/*/*.json; do \
		{ printf '\001'; cat "$$file"; } > fuzz/corpus/treefile/seed-$$(echo $$file | tr / -); done
	@cp treefiles/tests/fixtures/*/manifest-lock*.json treefiles/tests/fixtures/*/manifest-lock*.yaml fuzz/corpus/lockfile/
	cd fuzz && for target in $$(RUSTC_BOOTSTRAP=1 $(CARGO) fuzz list); do \
		RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$target -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -timeout=10 || exit 1; \
	done

clean:
	$(CARGO) clean
