# nslab: two commands for a fresh machine.
#   make run    build nslab and run topologies/lan.toml (needs root)
#   make test   unit tests, integration tests (as root) and the leftover check
GO      ?= go
BIN     := bin/nslab
PKGS    := ./...
# Integration tests build real labs; they run as root and must not skip.
TESTFLAGS ?= -count=1 -timeout 20m

.PHONY: all build run test unit integration vet fuzz bench clean-labs

all: build

build:
	$(GO) build -buildvcs=auto -o $(BIN) ./cmd/nslab

run: build
	./$(BIN) run topologies/lan.toml

vet:
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

unit:
	$(GO) test $(TESTFLAGS) ./emulator/... ./cmd/... ./scripting/...

integration: build
	$(GO) test $(TESTFLAGS) -p 1 ./tests/...

test: vet build
	$(GO) test $(TESTFLAGS) ./...

# A short run of the decoder's fuzz target (longer: FUZZTIME=5m make fuzz).
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME) ./emulator/

# Benchmarks: medians of several runs, and a report in bench-out/.
BENCHTIME ?= 5x
bench: build
	./tests/bench.sh $(BENCHTIME)
