# acestash: `make run` starts a server on the embedded default; `make test`
# installs what the tests need (redis-server, chromium, minio) and runs every test.

MINIO_VERSION := v0.0.0-20260212201848-7aac2a2c5b7c
TUSD_VERSION  := v2.9.1
MC_VERSION    := v0.0.0-20250313080218-cf909e1063a9
GOBIN         := $(shell go env GOPATH)/bin
export PATH   := $(GOBIN):$(PATH)
SUDO          := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
TUSCLIENT     := cmd/acestash/testdata/tusclient

.PHONY: build run test test-deps bench bench-scale vet fuzz

build:
	go build -o bin/acestash ./cmd/acestash

run: build
	./bin/acestash serve

# The fuzz targets' seed corpora (and the inputs in testdata/fuzz that once
# failed) run as ordinary tests in `make test`; each target also fuzzes
# for FUZZ_SHORT there, and for FUZZTIME with `make fuzz`. FUZZ_SHORT is a
# count of inputs, not a duration: go1.26's fuzzer can fail a target with a
# bare "context deadline exceeded" when a duration ends while a worker is
# busy (go.dev/issue/75804), which a loaded CI machine makes likely.
FUZZ_TARGETS := ./chunks:FuzzParseRange ./chunks:FuzzCleanName ./api:FuzzParseByteRange \
                ./api:FuzzReadForm ./api:FuzzMultipart ./api/remote:FuzzLiteral
FUZZ_SHORT   ?= 20000x
FUZZTIME     ?= 1m

# The fleet tests run on their own, verbose, so that each failover's
# figures (seconds until writes succeed again, files lost) are printed.
test: test-deps vet
	go test -race -count=1 -timeout 60m -skip '^TestFleet' ./...
	@echo "go test -race -run '^TestFleet' ./cmd/acestash"
	@log=$$(mktemp); go test -race -count=1 -timeout 20m -run '^TestFleet' -v ./cmd/acestash >$$log 2>&1; rc=$$?; \
	if [ $$rc = 0 ]; then grep -E -- '^(--- |ok)|files lost|every object' $$log; else cat $$log; fi; rm -f $$log; exit $$rc
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZ_SHORT)

fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t#*:}; \
		echo "fuzz $$pkg $$fn for $(FUZZTIME)"; \
		go test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done

vet:
	go vet ./...

# bench prints one table: acestash against MinIO, tusd and MinIO's client
# mc, measured in the same run (ACESTASH_BENCH_SIZE=bytes shrinks the 1 GiB
# file).
bench: test-deps
	@go version -m $(GOBIN)/tusd 2>/dev/null | grep -q 'mod[[:space:]]*github.com/tus/tusd/v2[[:space:]]*$(TUSD_VERSION)[[:space:]]' || { \
		echo "building tusd $(TUSD_VERSION) (a minute, once)"; \
		GOFLAGS=-buildvcs=false go install github.com/tus/tusd/v2/cmd/tusd@$(TUSD_VERSION); }
	@go version -m $(GOBIN)/mc 2>/dev/null | grep -q 'mod[[:space:]]*github.com/minio/mc[[:space:]]*$(MC_VERSION)[[:space:]]' || { \
		echo "building mc $(MC_VERSION) (a few minutes, once)"; \
		GOFLAGS=-buildvcs=false go install github.com/minio/mc@$(MC_VERSION); }
	go test -run '^$$' -bench . -benchtime 1x -timeout 60m ./cmd/acestash

# bench-scale measures what a file costs with 10 files stored and with a
# million (ACESTASH_COST_FILES), records written through the store API:
# Redis memory per record, round trips per request kind and per background
# job run, file/list's first and last page. About 10 minutes on a busy
# 2-CPU machine and 1 GiB of Redis memory, freed at the end.
COST_FILES ?= 1000000
bench-scale: test-deps
	ACESTASH_COST_FILES=$(COST_FILES) go test -count=1 -run '^TestCosts$$' -v -timeout 30m ./cmd/acestash

# test-deps installs the real programs the tests start: redis-server,
# haproxy (the fleet tests' load balancer), chromium (the web page's tests
# and the README's Uppy snippet drive it headless), nodejs and npm from
# Debian's packages, MinIO built from the
# pinned module version, and tus-js-client and Uppy from their committed
# lock file (again whenever it is newer than the install).
test-deps:
	@command -v redis-server >/dev/null 2>&1 || { \
		echo "installing redis-server"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server >/dev/null; }
	@command -v haproxy >/dev/null 2>&1 || { \
		echo "installing haproxy"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq haproxy >/dev/null; }
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing chromium"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; }
	@go version -m $(GOBIN)/minio 2>/dev/null | grep -q 'mod[[:space:]]*github.com/minio/minio[[:space:]]*$(MINIO_VERSION)' || { \
		echo "building minio $(MINIO_VERSION) (a few minutes, once)"; \
		GOFLAGS=-buildvcs=false go install github.com/minio/minio@$(MINIO_VERSION); }
	@{ command -v node && command -v npm; } >/dev/null 2>&1 || { \
		echo "installing nodejs and npm"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq nodejs npm >/dev/null; }
	@[ $(TUSCLIENT)/node_modules/.package-lock.json -nt $(TUSCLIENT)/package-lock.json ] || { \
		echo "installing tus-js-client (npm ci)"; \
		cd $(TUSCLIENT) && npm ci --no-audit --no-fund --loglevel=error; }
	@if docker compose version >/dev/null 2>&1 && [ -f docker-compose.yml ]; then \
		docker compose -f docker-compose.yml config -q && echo "docker-compose.yml: valid"; fi
