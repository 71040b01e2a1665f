# arbor: `make demo` runs the main job on the bundled example, `make test` runs every check CI runs.
# Both install the system packages first (scripts/install-deps is idempotent and quick when done).

CARGO ?= cargo
# Fuzzing time per target, in seconds (make fuzz).
FUZZ_SECONDS ?= 60
ARBOR := target/debug/arbor

.PHONY: all deps build demo serve test unit lint corpus bench fuzz clean

all: build

deps:
	@scripts/install-deps

build:
	$(CARGO) build --workspace

# The demo OS repository (examples/exampleos.repo points here) and the cache the demo uses.
DEMO_DIR ?= /var/tmp/arbor-demo

demo: deps build
	@echo "== building the exampleos RPM repository in $(DEMO_DIR)/repo (test-support RPM builder + createrepo_c)"
	@$(CARGO) run --quiet -p arbor-testsupport --bin exampleos-repository -- $(DEMO_DIR)/repo
	@echo
	@echo "== arbor treefile check examples/manifest.yaml"
	@$(ARBOR) treefile check examples/manifest.yaml --arch x86_64
	@echo
	@echo "== arbor treefile render examples/manifest.yaml --arch aarch64 --var prod=true (first 30 lines)"
	@$(ARBOR) treefile render examples/manifest.yaml --arch aarch64 --var prod=true | head -n 30
	@echo "   ..."
	@echo
	@echo "== arbor lockfile show examples/manifest-lock.x86_64.json examples/manifest-lock.overrides.yaml"
	@$(ARBOR) lockfile show examples/manifest-lock.x86_64.json examples/manifest-lock.overrides.yaml
	@echo
	@echo "== arbor compose resolve examples/manifest.yaml (lockfile + overrides applied; jq floats)"
	@$(ARBOR) compose resolve examples/manifest.yaml --arch x86_64 --cachedir $(DEMO_DIR)/cache
	@echo
	@echo "== arbor compose tree examples/manifest.yaml --repo $(DEMO_DIR)/ostree (a real ostree commit)"
	@$(ARBOR) compose tree examples/manifest.yaml --arch x86_64 --repo $(DEMO_DIR)/ostree \
		--cachedir $(DEMO_DIR)/cache --force-nocache --write-composejson-to $(DEMO_DIR)/compose.json
	@echo
	@echo "== $(DEMO_DIR)/compose.json (rpm-ostree's compose.json fields)"
	@head -n 12 $(DEMO_DIR)/compose.json
	@echo
	@echo "== ostree log / ls of the commit"
	@ostree --repo=$(DEMO_DIR)/ostree log exampleos/x86_64/testing-devel | head -n 6
	@ostree --repo=$(DEMO_DIR)/ostree ls exampleos/x86_64/testing-devel / /usr/bin /usr/lib/modules /usr/etc/ssh
	@echo
	@echo "== composing again: unchanged inputs stop at the input hash"
	@$(ARBOR) compose tree examples/manifest.yaml --arch x86_64 --repo $(DEMO_DIR)/ostree --cachedir $(DEMO_DIR)/cache
	@echo
	@echo "== arbor compose image examples/manifest.yaml --output oci:$(DEMO_DIR)/images:testing-devel (chunked OCI image)"
	@$(ARBOR) compose image examples/manifest.yaml --arch x86_64 --repo $(DEMO_DIR)/ostree \
		--cachedir $(DEMO_DIR)/cache --output oci:$(DEMO_DIR)/images:testing-devel --label org.opencontainers.image.title=exampleos
	@echo
	@echo "== arbor image verify (imported as a bootc / rpm-ostree client would, then ostree fsck)"
	@$(ARBOR) image verify oci:$(DEMO_DIR)/images:testing-devel
	@echo
	@echo "== pushing to a local registry (docker-registry on 127.0.0.1)"
	@scripts/local-registry stop $(DEMO_DIR)/registry
	@registry=$$(scripts/local-registry start $(DEMO_DIR)/registry) && \
	trap 'scripts/local-registry stop $(DEMO_DIR)/registry' EXIT && \
	$(ARBOR) image copy oci:$(DEMO_DIR)/images:testing-devel registry:$$registry/exampleos/os:testing-devel --tls-verify=false && \
	echo && echo "== skopeo inspect docker://$$registry/exampleos/os:testing-devel" && \
	skopeo inspect --tls-verify=false docker://$$registry/exampleos/os:testing-devel && \
	echo && echo "== composing the image again: the registry image has the same input hash" && \
	$(ARBOR) compose image examples/manifest.yaml --arch x86_64 --repo $(DEMO_DIR)/ostree \
		--cachedir $(DEMO_DIR)/cache --output registry:$$registry/exampleos/os:testing-devel --tls-verify=false && \
	echo && echo "== a bootc host switches to it with (the registry must be listed as insecure in" && \
	echo "   /etc/containers/registries.conf.d/ for plain HTTP):" && \
	echo "   bootc switch $$registry/exampleos/os:testing-devel" && \
	echo "   rpm-ostree rebase ostree-unverified-registry:$$registry/exampleos/os:testing-devel"
	@echo
	@echo "== the compose server: arbor serve on a git repository of examples/ (scripts/demo-server)"
	@scripts/demo-server $(DEMO_DIR)

# The demo's server, left running until Ctrl-C (after `make demo`, or on its own).
serve: deps build
	@$(CARGO) run --quiet -p arbor-testsupport --bin exampleos-repository -- $(DEMO_DIR)/repo
	@scripts/demo-server $(DEMO_DIR) --stay

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

# Benchmark corpora from ../shared/corpus: 60,000-package synthetic metadata and real packages (gen 0).
CORPUS_DIR ?= target/bench-corpus
CORPUS_TOOL := $(CORPUS_DIR)/tool/release/rpm-corpus

corpus:
	@mkdir -p $(CORPUS_DIR)
	CARGO_TARGET_DIR=$(CORPUS_DIR)/tool $(CARGO) build --release --quiet --manifest-path ../shared/corpus/Cargo.toml
	@test -f $(CORPUS_DIR)/synth/repodata/repomd.xml || \
		$(CORPUS_TOOL) synth-metadata --packages 60000 --out $(CORPUS_DIR)/synth --seed 1
	@test -f $(CORPUS_DIR)/gen0/repodata/repomd.xml || { \
		$(CORPUS_TOOL) fetch --seed ../shared/corpus/seed-coreos-like.txt --cache $(CORPUS_DIR)/cache && \
		$(CORPUS_TOOL) build --cache $(CORPUS_DIR)/cache --out $(CORPUS_DIR)/gen0; }
	@for generation in 1 2 3 4 5 6 7 8 9 10 11 12; do \
		test -f $(CORPUS_DIR)/gen$$generation/repodata/repomd.xml || \
		$(CORPUS_TOOL) build --cache $(CORPUS_DIR)/cache --out $(CORPUS_DIR)/gen$$generation --generation $$generation || exit 1; \
	done

# The release binary the resolve benchmark runs as a whole process (CARGO_TARGET_DIR is honoured).
ARBOR_RELEASE := $(or $(CARGO_TARGET_DIR),target)/release/arbor

bench: deps corpus
	$(CARGO) bench -p treefiles --bench render
	$(CARGO) build --release --bin arbor
	ARBOR_BENCH_CORPUS=$(abspath $(CORPUS_DIR)) ARBOR_BIN=$(abspath $(ARBOR_RELEASE)) $(CARGO) bench -p rpmmd --bench resolve
	ARBOR_BENCH_CORPUS=$(abspath $(CORPUS_DIR)) $(CARGO) bench -p arbor --bench compose
	ARBOR_BENCH_CORPUS=$(abspath $(CORPUS_DIR)) $(CARGO) bench -p image --bench chunking
	ARBOR_BENCH_CORPUS=$(abspath $(CORPUS_DIR)) $(CARGO) bench -p arbor --bench image
	$(CARGO) bench -p tree --bench cache_gc
	$(CARGO) bench -p pipeline --bench queue
	$(CARGO) bench -p pipeline --bench execution
	$(CARGO) bench -p web --bench api

# Runs every fuzz target for FUZZ_SECONDS each (needs cargo-fuzz; nightly features via RUSTC_BOOTSTRAP).
fuzz:
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	@mkdir -p fuzz/corpus/treefile fuzz/corpus/lockfile fuzz/corpus/primary fuzz/corpus/payload
	@cp rpmmd/libsolv/tests/data/primary.xml fuzz/corpus/primary/seed-primary.xml
	@cp fuzz/seeds/payload/* fuzz/corpus/payload/
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
