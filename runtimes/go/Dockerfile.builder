# Ferry's Go builder: the Go toolchain, Ferry's runner source and ferry-build,
# which compiles a bundle in /src into the static binary /out/bootstrap.
# With a registry, build FROM an official image instead:
#   docker build --build-arg BASE=golang:1.23-bookworm -f runtimes/go/Dockerfile.builder -t ferry/go-builder runtimes/go
ARG BASE=ferry/base:bookworm
FROM ${BASE}

# Bookworm itself ships Go 1.19; take the newest toolchain of bookworm-backports
# (from the mirror the base image already uses) and fall back to 1.19. Builds
# need neither the toolchain's own tests and sources nor the profiling tools.
RUN set -eu; \
    if ! command -v go >/dev/null; then \
        mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1); \
        if [ -n "$mirror" ]; then \
            printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\n' "$mirror" \
                >/etc/apt/sources.list.d/backports.sources; \
        fi; \
        apt-get update -qq; \
        pkg=$(apt-cache pkgnames golang-1. | grep -E '^golang-1\.[0-9]+-go$' | sort -V | tail -n1); \
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            -t bookworm-backports "${pkg:-golang-go}" ca-certificates \
          || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends golang-go ca-certificates; \
        goroot=$(ls -d /usr/lib/go-1.* | sort -V | tail -n1); \
        ln -sf "$goroot/bin/go" /usr/local/bin/go; \
        ln -sf "$goroot/bin/gofmt" /usr/local/bin/gofmt; \
        rm -f /etc/apt/sources.list.d/backports.sources; \
        src=$(readlink -f "$goroot/src"); \
        find "$src" -name '*_test.go' -type f -delete; \
        find "$src" -name testdata -type d -prune -exec rm -rf {} +; \
        rm -rf "$(readlink -f "$goroot/test")" "$src/cmd" \
            "$goroot"/pkg/tool/*/pprof "$goroot"/pkg/tool/*/trace; \
        apt-get clean; rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/*; \
    fi; \
    if ! getent passwd 1000 >/dev/null; then \
        groupadd -g 1000 ferry 2>/dev/null || true; \
        useradd -u 1000 -g 1000 -M -d /tmp -s /usr/sbin/nologin ferry; \
    fi

COPY _runner/ /opt/ferry/go/
COPY ferry-build /usr/local/bin/ferry-build

# Compile the standard library once, with the flags ferry-build uses, into a
# cache that each build copies to its writable /tmp.
RUN set -eu; \
    mkdir -p /tmp/warm /tmp/warm-out; \
    printf 'package main\n\nimport "context"\n\nfunc Handle(ctx context.Context, e map[string]interface{}) (interface{}, error) { return e, nil }\n' >/tmp/warm/main.go; \
    GOCACHE=/opt/ferry/gocache FERRY_SRC=/tmp/warm FERRY_OUT=/tmp/warm-out ferry-build; \
    rm -rf /tmp/warm /tmp/warm-out /tmp/go /tmp/ferry-build.*; \
    chmod -R a+rX /opt/ferry/gocache

ENV HOME=/tmp
WORKDIR /tmp
USER 1000:1000
ENTRYPOINT ["/usr/local/bin/ferry-build"]

ARG FERRY_IMAGE_HASH=dev
LABEL ferry.image.hash=${FERRY_IMAGE_HASH} \
      ferry.runtime=go-builder
