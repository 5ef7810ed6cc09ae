# Ferry: `make dev` runs everything locally, `make test` runs every test
# against a separate, throw-away stack. Ports live in scripts/env.sh.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
export PATH := /usr/local/go/bin:$(PATH)

.PHONY: dev stop test lint tools images deploy-images build stack-up stack-down status test-stack-up test-stack-down env

## dev: tools, runtime images, dev stack, then `ferry server` in the foreground
dev: tools images
	scripts/dev.sh

## stop: stop the dev stack (PostgreSQL, Temporal, S3)
stop:
	scripts/stack.sh down dev

## test: tidy check, darwin and windows builds, lint, go vet + every test with -race against the test stack (ports 1xxxx)
test: tools images deploy-images
	scripts/test.sh

## lint: gofmt, staticcheck over the module, workflowcheck over ./workflows/...
lint: tools
	scripts/lint.sh

## tools: install the pinned Temporal CLI, Temporal server, UI server, Compose v2, versitygw, staticcheck and workflowcheck into ./bin, and Debian packages
tools:
	scripts/tools.sh

## images: build the runtime images (Docker, from a local Debian rootfs)
images:
	@if [ -f scripts/images.sh ]; then bash scripts/images.sh; \
	else echo "scripts/images.sh not there yet: no runtime images built"; fi

## deploy-images: build the images of docker-compose.yml and the cluster test (ferry/*:local)
deploy-images: tools images
	scripts/deploy-images.sh

## build: build bin/ferry
build:
	go build -o bin/ferry ./cmd/ferry

## stack-up / stack-down / status: the dev stack without the server
stack-up: tools
	scripts/stack.sh up dev
stack-down: stop
status:
	@scripts/stack.sh status dev
	@scripts/stack.sh status test

## test-stack-up / test-stack-down: the test stack alone, for running single tests
test-stack-up: tools
	scripts/stack.sh up test
test-stack-down:
	scripts/stack.sh down test

## env: print the dev settings; use as  eval "$(make -s env)"
env:
	@scripts/env.sh dev

help:
	@grep -E '^## ' Makefile | sed 's/^## /  /'
