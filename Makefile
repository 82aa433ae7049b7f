# lifeline: build, run and test. `make run` starts a dashboard, an agent and
# the demo bot; `make test` runs every test with the race detector.

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GO      ?= go
# The Go that builds, vets and tests, whatever Go the machine has (the go
# command fetches it once through the module proxy): 1.26.8 trusts the
# compromised eMudhra CA keys, and lifeline's TLS clients
# trust the system's CAs (a tls:// bus without --nats-ca; ngrok's SDK warns).
# go.mod's toolchain line says the same, but GOTOOLCHAIN=local, a common
# `go env -w` setting, ignores it. `GOTOOLCHAIN=local make ...` uses the
# machine's Go.
GOTOOLCHAIN ?= go1.27.3
export GOTOOLCHAIN
BIN     := bin/lifeline
LDFLAGS := -X main.version=$(VERSION)
# TAGS=ngrok links ngrok's SDK for `lifeline dashboard --ngrok`. It is not in
# the default build: it adds ~4 ms and ~90 page faults to every process start.
TAGS    ?=

.PHONY: build run test fuzz bench bench-smoke bench-fleet lint cross dist clean

# CGO_ENABLED=0: a static binary starts ~5 ms sooner (no dynamic loader, no
# libc), and every `lifeline status` and every respawned bot pays the start.
build:
	CGO_ENABLED=0 $(GO) build -tags "$(TAGS)" -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/lifeline

run: build
	./scripts/run.sh

test:
	$(GO) test -race -count=1 -timeout 10m ./...
	$(GO) test -race -count=1 -timeout 5m -tags ngrok -run 'Ngrok|TestHelp|TestUsage' ./cmd/lifeline

# Every decoder and parser, fuzzed for FUZZTIME each (go test -fuzz takes one
# target per run). A crasher is saved under its package's testdata/fuzz/:
# commit it, and from then on `make test` replays it as a regression test.
# FUZZTIME is a count of inputs, a few seconds' worth, not a duration: with a
# duration, Go 1.26's fuzz coordinator can fail a clean run with "context
# deadline exceeded" as time runs out (go.dev/issue/75804, fixed in Go 1.27).
FUZZTIME ?= 20000x
FUZZ := \
	./bus:FuzzDecodeRequest \
	./bus:FuzzDecodeHeartbeat \
	./bus:FuzzDecodeStatus \
	./bus:FuzzDecodeReply \
	./bus:FuzzDecodeEvent \
	./bus:FuzzEncodeClips \
	./bus:FuzzValidName \
	./bus:FuzzNameFromSubject \
	./bus:FuzzServiceVersion \
	./internal/pidfile:FuzzParse

fuzz:
	@missing=$$(grep -rhoE '^func Fuzz[A-Za-z0-9_]+' --include='*_test.go' . | sed 's/^func //' | \
		while read -r n; do case " $(FUZZ) " in *":$$n "*) ;; *) echo "$$n" ;; esac; done); \
	if [ -n "$$missing" ]; then echo "add to FUZZ in the Makefile:" $$missing; exit 1; fi
	@set -e; for t in $(FUZZ); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$name ($$pkg, $(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

# Side by side (scripts/bench/): one tiny static bot supervised by lifeline,
# supervisord and PM2 in one run, one table of medians with each figure's
# ratio to the best peer. scripts/bench.sh installs a missing peer
# (apt-get install supervisor as root; npm install pm2 into a temporary
# directory with its own PM2_HOME) or skips it and says so. Then lifeline's
# own details, 30 rounds per figure: respawn to the first heartbeat, hang
# detection, restart, `lifeline status`, memory. BENCH_FLAGS go to the
# harness, e.g. BENCH_FLAGS="-n 5 -bots 20".
BENCH_FLAGS ?=
bench:
	./scripts/bench.sh $(BENCH_FLAGS)
	$(GO) test -run '^$$' -bench E2E -benchtime=1x -timeout 10m ./cmd/lifeline

# The same harness, short (n=2, 3 bots), installing nothing, then every Go
# benchmark once (the E2E ones for 3 rounds): CI runs it so that none of them
# can rot. Peers not installed are skipped.
bench-smoke:
	./scripts/bench.sh --smoke $(BENCH_FLAGS)
	$(GO) test -run '^$$' -bench . -benchtime=1x -timeout 5m $$($(GO) list ./... | grep -v '/cmd/lifeline$$')
	$(GO) test -run '^$$' -bench . -benchtime=1x -timeout 5m ./cmd/lifeline -args -rounds 3

# Fleet figures, long: one agent with 100 bots, one dashboard following
# 10,000 simulated bots, 1,000 live-stream clients (scripts/bench/fleet.go).
bench-fleet:
	./scripts/bench.sh --fleet $(BENCH_FLAGS)

lint:
	$(GO) vet ./...
	$(GO) vet -tags ngrok ./cmd/lifeline ./dashboard
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi

# Windows and macOS, checked from here: both build, and both pass vet, which
# type-checks every package together with its tests (in-package and _test
# packages), so test code that only compiles on Linux fails here, not on
# someone's Mac. That is what `go test -c` would prove, short of linking a
# test binary per package that nothing here can run. Whether the code works
# there is another matter: README, "Platforms".
cross:
	GOOS=windows $(GO) build ./...
	GOOS=darwin $(GO) build ./...
	GOOS=windows $(GO) vet ./...
	GOOS=darwin $(GO) vet ./...

# Release archives in dist/ (gitignored), one per OS and CPU: static
# (CGO_ENABLED=0), -trimpath (no build machine's paths in the binary),
# stripped (-s -w, about a third smaller; panics still print file:line), the
# version stamped; tar.gz for Linux and macOS, zip for Windows, each holding
# lifeline-VERSION-OS-ARCH/{lifeline[.exe],README.md}; and SHA256SUMS.
# scripts/dist-check.sh checks them (CI runs both). DIST_PLATFORMS narrows it.
DIST_PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64
dist:
	@command -v zip >/dev/null || { echo "make dist: zip is missing (apt-get install zip)"; exit 1; }
	rm -rf dist
	@set -e; mkdir -p dist; for p in $(DIST_PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; name=lifeline-$(VERSION)-$$os-$$arch; exe=lifeline; \
		if [ $$os = windows ]; then exe=lifeline.exe; fi; \
		echo "build dist/$$name"; mkdir -p dist/$$name; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags "$(LDFLAGS) -s -w" -o dist/$$name/$$exe ./cmd/lifeline; \
		cp README.md dist/$$name/; \
		if [ $$os = windows ]; then (cd dist && zip -qr $$name.zip $$name); \
		else tar -C dist -czf dist/$$name.tar.gz $$name; fi; \
		rm -rf dist/$$name; \
	done
	cd dist && files=$$(ls *.tar.gz *.zip 2>/dev/null); if command -v sha256sum >/dev/null; then sha256sum -- $$files; \
		else shasum -a 256 -- $$files; fi > SHA256SUMS
	@cat dist/SHA256SUMS

clean:
	rm -rf bin
