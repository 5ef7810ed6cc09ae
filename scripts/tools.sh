#!/usr/bin/env bash
# Installs the tools the local stack needs, each only when it is missing:
#   ./bin/temporal   Temporal CLI (dev server + Web UI), pinned version
#   ./bin/temporal-server, ./bin/temporal-sql-tool, ./bin/temporal-ui-server
#                    the Temporal server (PostgreSQL), its schema tool and the Web UI
#                    server, pinned in scripts/temporal and scripts/temporal-ui
#   ./bin/docker-compose  Docker Compose v2, pinned in scripts/compose (the
#                    compose test runs it; users have their own `docker compose`)
#   ./bin/versitygw  S3 server over a POSIX folder, pinned version
#   ./bin/staticcheck, ./bin/workflowcheck  linters of `make lint`, pinned versions
#   Debian packages: PostgreSQL server, debootstrap (runtime images), curl,
#                    chromium-headless-shell (the console's browser tests)
# Safe to run again and again; a second run does nothing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
export PATH="/usr/local/go/bin:$PATH"
export GOBIN=$ROOT/bin

# The Temporal CLI v1.5.1 is built from scripts/temporal-cli (its go.mod pins the
# CLI and a newer SQLite driver; see the comment in its main.go), not with a plain
# `go install`: the CLI's pinned driver wedges the dev server under load.
TEMPORAL_DIR=scripts/temporal-cli
VERSITYGW_MOD=github.com/versity/versitygw/cmd/versitygw
VERSITYGW_VERSION=v1.8.0
STATICCHECK_MOD=honnef.co/go/tools/cmd/staticcheck
STATICCHECK_VERSION=v0.8.2
WORKFLOWCHECK_MOD=go.temporal.io/sdk/contrib/tools/workflowcheck
WORKFLOWCHECK_VERSION=v0.6.0

log() { printf '[tools] %s\n' "$*" >&2; }

# go_tool BINARY PACKAGE VERSION: `go install` unless ./bin/BINARY already is
# that version (read from the build info that Go embeds in every binary).
go_tool() {
	local bin=$GOBIN/$1 pkg=$2 version=$3 have
	if [ -x "$bin" ]; then
		have=$(go version -m "$bin" 2>/dev/null | awk '$1 == "mod" { print $3; exit }')
		if [ "$have" = "$version" ]; then
			log "$1 $version: present"
			return
		fi
		log "$1: found ${have:-unknown version}, want $version"
	fi
	log "$1 $version: building (takes minutes the first time)"
	local start=$SECONDS
	go install "$pkg@$version"
	log "$1 $version: built in $((SECONDS - start))s"
}

# module_tool BINARY DIR PACKAGE [GO BUILD FLAGS...] builds PACKAGE, a tool of
# the main module in DIR (whose go.mod pins it), into ./bin/BINARY unless it was
# built from the same go.sum.
module_tool() {
	local name=$1 bin=$GOBIN/$1 dir=$2 pkg=$3 want
	shift 3
	want=$(sha256sum "$dir/go.sum" | cut -c1-16)
	if [ -x "$bin" ] && [ "$(cat "$bin.gosum" 2>/dev/null)" = "$want" ]; then
		log "$name ($dir, go.sum $want): present"
		return
	fi
	log "$name: building $pkg from $dir (takes minutes the first time)"
	local start=$SECONDS
	(cd "$dir" && go build -trimpath "$@" -o "$bin" "$pkg")
	echo "$want" >"$bin.gosum"
	log "$name: built in $((SECONDS - start))s"
}

# temporal_tool builds ./bin/temporal from $TEMPORAL_DIR unless it was built
# from the same go.sum (its hash is kept beside the binary).
temporal_tool() {
	local bin=$GOBIN/temporal want
	want=$(sha256sum "$TEMPORAL_DIR/go.sum" | cut -c1-16)
	if [ -x "$bin" ] && [ "$(cat "$bin.gosum" 2>/dev/null)" = "$want" ]; then
		log "temporal ($TEMPORAL_DIR, go.sum $want): present"
		return
	fi
	log "temporal: building from $TEMPORAL_DIR (takes minutes the first time)"
	local start=$SECONDS
	(cd "$TEMPORAL_DIR" && go build -o "$bin" .)
	echo "$want" >"$bin.gosum"
	log "temporal: built in $((SECONDS - start))s"
}

have_pg_server() {
	command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}

apt_packages() {
	local missing=()
	have_pg_server || missing+=(postgresql)
	command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
	command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
	command -v curl >/dev/null 2>&1 || missing+=(curl)
	# The console's browser tests drive headless Chromium (cmd/ferry/console_e2e_test.go).
	command -v chromium-headless-shell >/dev/null 2>&1 || command -v chromium >/dev/null 2>&1 ||
		missing+=(chromium-headless-shell fonts-dejavu-core)
	command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
	# `go test -race` needs cgo, hence a C compiler.
	command -v gcc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
	if [ ${#missing[@]} -eq 0 ]; then
		log "Debian packages: present"
		return
	fi
	command -v apt-get >/dev/null 2>&1 || {
		log "missing ${missing[*]} and no apt-get: install them by hand"
		exit 1
	}
	local sudo=()
	[ "$(id -u)" = 0 ] || sudo=(sudo)
	log "installing ${missing[*]}"
	"${sudo[@]}" apt-get update -qq
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq \
		--no-install-recommends "${missing[@]}" >/dev/null
}

command -v go >/dev/null 2>&1 || {
	log "go not found (expected in /usr/local/go/bin)"
	exit 1
}
mkdir -p "$GOBIN"
apt_packages
temporal_tool
module_tool temporal-server scripts/temporal go.temporal.io/server/cmd/server
module_tool temporal-sql-tool scripts/temporal go.temporal.io/server/cmd/tools/sql
module_tool temporal-ui-server scripts/temporal-ui github.com/temporalio/ui-server/v2/cmd/server
# Stamp the version in as Compose's release builds do (`docker compose version`).
module_tool docker-compose scripts/compose github.com/docker/compose/v2/cmd \
	-ldflags "-X github.com/docker/compose/v2/internal.Version=$(cd scripts/compose && go list -m -f '{{.Version}}' github.com/docker/compose/v2)"
go_tool versitygw "$VERSITYGW_MOD" "$VERSITYGW_VERSION"
go_tool staticcheck "$STATICCHECK_MOD" "$STATICCHECK_VERSION"
go_tool workflowcheck "$WORKFLOWCHECK_MOD" "$WORKFLOWCHECK_VERSION"
