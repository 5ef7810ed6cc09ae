#!/usr/bin/env bash
# Installs the tools the local stack needs, each only when it is missing:
#   ./bin/temporal   Temporal CLI (dev server + Web UI), pinned version
#   ./bin/versitygw  S3 server over a POSIX folder, pinned version
#   Debian packages: PostgreSQL server, debootstrap (runtime images), curl
# Safe to run again and again; a second run does nothing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
export PATH="/usr/local/go/bin:$PATH"
export GOBIN=$ROOT/bin

TEMPORAL_MOD=github.com/temporalio/cli/cmd/temporal
TEMPORAL_VERSION=v1.5.1
VERSITYGW_MOD=github.com/versity/versitygw/cmd/versitygw
VERSITYGW_VERSION=v1.8.0

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

have_pg_server() {
	command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}

apt_packages() {
	local missing=()
	have_pg_server || missing+=(postgresql)
	command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
	command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
	command -v curl >/dev/null 2>&1 || missing+=(curl)
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
go_tool temporal "$TEMPORAL_MOD" "$TEMPORAL_VERSION"
go_tool versitygw "$VERSITYGW_MOD" "$VERSITYGW_VERSION"
