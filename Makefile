# Ferry — the two commands a new user needs are `make run` and `make test`.
GO      ?= go
BIN     := bin
GOFLAGS ?=

.PHONY: build run test test-short vet fmt bench-link bench-promotion clean

build:
	$(GO) build $(GOFLAGS) -o $(BIN)/ferry-hub ./hub/cmd/ferry-hub
	$(GO) build $(GOFLAGS) -o $(BIN)/ferry-agent ./agent/cmd/ferry-agent
	$(GO) build $(GOFLAGS) -o $(BIN)/apim-sim ./agent/cmd/apim-sim

# Starts a hub on the embedded store, a demo organization with Dev and Prod,
# two APIM stand-ins and two linked agents on loopback. Ctrl-C stops all.
run: build
	scripts/run-local.sh

# Everything, with the race detector: vet, unit, store conformance (SQLite and
# in-process FerretDB), integration and end-to-end tests.
test:
	scripts/test.sh

vet:
	$(GO) vet ./shared/... ./hub/... ./agent/...

fmt:
	gofmt -w shared hub agent

bench-link: build
	scripts/bench-link

bench-promotion: build
	scripts/bench-promotion

clean:
	rm -rf $(BIN) data out
