# Rill developer entry points. `make test` is the one test command: the
# README and .ci/run both call it.
CARGO ?= cargo

.PHONY: test test-rust quickstart-smoke cluster-smoke test-chart test-monitoring test-e2e crds crds-check build release fmt lint compat compat-kafka

test: lint test-rust quickstart-smoke cluster-smoke crds-check test-chart test-images test-e2e compat test-monitoring faults-short bench-smoke soak-short

test-rust:
	$(CARGO) test --workspace --all-targets

# The README's quick start, in debug and without waiting for Ctrl-C.
quickstart-smoke:
	scripts/quickstart.sh --smoke

# A controller and three brokers on loopback: create RF=3, produce, consume.
cluster-smoke:
	scripts/local-cluster.sh --smoke

build:
	$(CARGO) build --workspace --all-targets

release:
	$(CARGO) build --release --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps

# Against a real kube-apiserver + etcd on loopback (built from the Go module
# proxy once, ~13 min, then cached): the CRD checks and the rill-e2e tests.
# The scenarios use kcat and confluent-kafka: installed (cached) by install-compat.sh.
test-e2e:
	scripts/install-compat.sh
	e2e/scripts/build-k8s.sh
	e2e/scripts/apiserver.sh start
	e2e/scripts/check-crds.sh || { e2e/scripts/apiserver.sh stop; exit 1; }
	e2e/scripts/run-tests.sh || { e2e/scripts/apiserver.sh stop; exit 1; }
	e2e/scripts/apiserver.sh stop --clean

# Container images without a daemon (docs/images.md): OCI layouts and
# archives of rill/broker and rill/operator from a release build, in
# $${CARGO_TARGET_DIR:-target}/images; prints their digests.
.PHONY: images test-images
images:
	scripts/build-images.sh

# The images built twice from the debug binaries: reproducible, valid OCI,
# user, entrypoint, ports, labels, files and owners; as root the binaries run
# inside the unpacked image. Installs skopeo and umoci with apt-get as root.
test-images:
	scripts/test-images.sh

# Regenerate crds/ and charts/rill/crds/ from the operator's Rust types.
crds:
	$(CARGO) run -p rill-operator --bin crdgen

# Fail when the committed CRDs differ from the Rust types or from each other.
# `--workspace` (not `-p rill-operator`): the feature set of `make test`'s
# build, so the test binary test-rust built is reused instead of tokio, kube
# and everything above them being compiled a second time.
crds-check:
	diff -r crds charts/rill/crds
	$(CARGO) test --workspace --lib crd::tests

# helm lint/template with default and ci/ values, schema and RBAC checks.
# Installs the pinned helm into $${RILL_TOOLS:-$$HOME/.cache/rill/tools}.
test-chart:
	scripts/test-chart.sh

# The chart's alerts parse with promtool (built once from the Go module
# proxy) and every metric the alerts and the dashboard name is exported by a
# running Rill (controller, 3 brokers, operator). Uses `make test`'s build.
test-monitoring:
	scripts/test-monitoring.sh

# Client compatibility (compat/README.md): kcat, librdkafka (confluent-kafka),
# the Java client, Kafka's command-line tools and Kafka Streams against a
# Rill controller + 3 brokers on loopback. Installs the clients into
# $${RILL_CACHE:-$$HOME/.cache/rill}/compat first.
compat:
	scripts/install-compat.sh
	compat/run.sh --target rill
	compat/run.sh --target rill --no-build --security sasl_ssl
	compat/run.sh --target rill --no-build --security mtls

# The same tests against real Apache Kafka (3 brokers), which proves them.
compat-kafka:
	scripts/install-compat.sh
	compat/run.sh --target kafka
	compat/run.sh --target kafka --security sasl_ssl
	compat/run.sh --target kafka --security mtls

# Side-by-side benchmark against Apache Kafka (bench/README.md): 3 brokers
# each, RF=3, acks=all, the rill-load client. `bench` is the full run (about
# 30 min, release build) and publishes bench/results/latest.md; `bench-smoke`
# runs every step for seconds (debug binaries, about 4 min), the
# partition-scale curve at its smallest point and the client and group
# curves at theirs (Rill only, 10-20 s each), and prints figures without
# asserting on them. `scale` is the partition-scale curve (6 to 30,000
# partition replicas, release build; bench/results/scale-latest.md);
# `scale-clients` and `scale-groups` the curves of 10 to 1,000 clients and
# consumer groups (bench/results/clients-latest.md, groups-latest.md). All
# install Kafka's jars and a matplotlib venv into
# $${RILL_CACHE:-$$HOME/.cache/rill} first.
DEBUG_BIN = $${CARGO_TARGET_DIR:-target}/debug
.PHONY: bench bench-smoke scale scale-clients scale-groups soak soak-short
bench:
	bench/run.sh

bench-smoke:
	bench/run.sh --smoke
	RILL_BIN_DIR=$(DEBUG_BIN) bench/scale.sh --points 6 --seconds 3 --warmup-seconds 0 --idle-seconds 2 --settle-seconds 1
	RILL_BIN_DIR=$(DEBUG_BIN) bench/curves.sh clients --points 10 --systems rill --seconds 3 --warmup-seconds 0
	RILL_BIN_DIR=$(DEBUG_BIN) bench/curves.sh groups --points 10 --systems rill --seconds 3 --warmup-seconds 0

scale:
	bench/scale.sh

scale-clients:
	bench/curves.sh clients

scale-groups:
	bench/curves.sh groups

# The soak test (bench/README.md): `soak` runs 60 minutes against a release
# build and fails on RSS or file-descriptor growth that does not level off;
# `soak-short` (part of `make test`) 2 minutes of 20 s rounds with a broker
# restart every minute, against the debug binaries.
soak:
	bench/soak.sh

soak-short:
	RILL_BIN_DIR=$(DEBUG_BIN) bench/soak.sh --minutes 2 --round-seconds 20 --restart-every 1 --rate 500

# --- Fault injection (faults/README.md) ---------------------------------------
# Jepsen-style suite: controller + 3 brokers in network namespaces, real Kafka
# clients, partitions/crashes/disk faults, a history checker. Needs root.
# `faults` is the long form against Rill (publishes faults/results/rill-latest.md),
# `faults-short` the checker's unit tests and the ~6 min subset (part of `make test`), `faults-kafka` the long form against Apache
# Kafka (FAULTS_ARGS=--short for its short form). Rill's debug binaries must be built.
FAULTS_ARGS ?=
.PHONY: faults faults-short faults-kafka
faults:
	faults/install.sh
	faults/run.sh --target rill --long $(FAULTS_ARGS)

faults-short:
	faults/install.sh
	faults/run.sh --test
	faults/run.sh --target rill --short $(FAULTS_ARGS)

faults-kafka:
	faults/install.sh
	faults/run.sh --target kafka $(if $(filter --short,$(FAULTS_ARGS)),,--long) $(FAULTS_ARGS)
