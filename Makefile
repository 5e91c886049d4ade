# nslab: two commands for a fresh machine.
#   make run    build nslab and run topologies/lan.toml (needs root);
#               make run NAME=mylab names the lab, so that two users or CI
#               jobs on one machine do not collide on the name "lan"
#   make test   unit tests, integration tests (as root, then again as an
#               ordinary user: make test-rootless) and the leftover check
GO      ?= go
BIN     := bin/nslab
PKGS    := ./...
# Integration tests build real labs; they run as root and must not skip.
TESTFLAGS ?= -count=1 -timeout 20m

.PHONY: all build run test test-rootless test-netem test-without-tools unit integration vet fuzz bench clean-labs graphs

all: build

build:
	$(GO) build -buildvcs=auto -o $(BIN) ./cmd/nslab

NAME ?=
run: build
	./$(BIN) run topologies/lan.toml $(if $(NAME),--name $(NAME))

vet:
	$(GO) vet $(PKGS)
	# The model builds and vets on any OS: validate and script checks need no Linux.
	GOOS=darwin $(GO) vet ./topo/...
	GOOS=darwin $(GO) vet ./graph/...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

unit:
	$(GO) test $(TESTFLAGS) ./topo/... ./capture/... ./graph/... ./internal/topodoc/ ./emulator/... ./cmd/... ./scripting/...

integration: build
	$(GO) test $(TESTFLAGS) -p 1 ./tests/...

test: vet build
	$(GO) test $(TESTFLAGS) ./...
	$(MAKE) test-rootless
	$(MAKE) test-netem

# The integration suite of tests/ again as an ordinary user (run as root:
# it builds the test binary and nslab, makes the user NSLAB_TEST_USER,
# default nslab-test, if missing, and runs the suite as that user, in a
# user namespace of its own; tests/rootless.sh, docs/rootless.md "Tests").
# Only the tests that are root-only by nature skip, saying why.
test-rootless:
	./tests/rootless.sh $(GO)

# The tests that need the kernel's netem (test files with //go:build netem):
# natively where this kernel has sch_netem, otherwise in a throwaway qemu VM
# booting Debian's stock kernel (tests/netemvm; docs/testing.md).
test-netem:
	$(GO) build -o bin/netemvm ./tests/netemvm
	./bin/netemvm -go $(GO) ./...

# The tests that run programs in nodes, again as on a machine without ping,
# tcpdump, iperf3 and the like (hidden from PATH): the suite must pass with
# and without them. CI runs both.
test-without-tools: build
	./tests/without-tools.sh $(GO) test $(TESTFLAGS) -p 1 -run 'TestScript|TestPrompt|TestCLI|TestAttach' ./tests/ ./scripting/

# docs/topologies.md: a picture of every file in topologies/ (make test
# fails with "run make graphs" when it is out of date).
graphs:
	$(GO) test -count=1 -run TestTopologiesDoc ./internal/topodoc/ -update

# A short run of the decoder's fuzz target (longer: FUZZTIME=5m make fuzz).
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME) ./topo/

# Benchmarks: medians of several runs, and a report in bench-out/.
BENCHTIME ?= 5x
bench: build
	./tests/bench.sh $(BENCHTIME)
