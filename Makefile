# acestash: `make run` starts a server on the embedded default; `make test`
# installs what the tests need (redis-server, minio) and runs every test.

MINIO_VERSION := v0.0.0-20260212201848-7aac2a2c5b7c
GOBIN         := $(shell go env GOPATH)/bin
export PATH   := $(GOBIN):$(PATH)
SUDO          := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: build run test test-deps bench vet

build:
	go build -o bin/acestash ./cmd/acestash

run: build
	./bin/acestash serve

test: test-deps vet
	go test -race -count=1 -timeout 60m ./...

vet:
	go vet ./...

bench: test-deps
	go test -run '^$$' -bench . -benchmem -timeout 60m ./...

# test-deps installs the real servers the tests start: redis-server from
# Debian's packages and MinIO built from the pinned module version.
test-deps:
	@command -v redis-server >/dev/null 2>&1 || { \
		echo "installing redis-server"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server >/dev/null; }
	@go version -m $(GOBIN)/minio 2>/dev/null | grep -q 'mod[[:space:]]*github.com/minio/minio[[:space:]]*$(MINIO_VERSION)' || { \
		echo "building minio $(MINIO_VERSION) (a few minutes, once)"; \
		GOFLAGS=-buildvcs=false go install github.com/minio/minio@$(MINIO_VERSION); }
	@if docker compose version >/dev/null 2>&1 && [ -f docker-compose.yml ]; then \
		docker compose -f docker-compose.yml config -q && echo "docker-compose.yml: valid"; fi
