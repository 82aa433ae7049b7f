# lifeline: build, run and test. `make run` starts a dashboard, an agent and
# the demo bot; `make test` runs every test with the race detector.

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GO      ?= go
BIN     := bin/lifeline
LDFLAGS := -X main.version=$(VERSION)

.PHONY: build run test bench lint cross clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/lifeline

run: build
	./scripts/run.sh

test:
	$(GO) test -race -count=1 -timeout 10m ./...

# Real processes from the built binary, 30 rounds per figure: respawn after
# SIGKILL, hang detection, restart, `lifeline status`, and memory.
bench:
	$(GO) test -run '^$$' -bench E2E -benchtime=1x -timeout 10m ./cmd/lifeline

lint:
	$(GO) vet ./...
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi

cross:
	GOOS=windows $(GO) build ./...
	GOOS=darwin $(GO) build ./...

clean:
	rm -rf bin
