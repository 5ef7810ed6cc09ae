#!/usr/bin/env bash
# Builds Ferry's runtime images locally, without an image registry:
#
#   ferry/base:bookworm      debootstrap --variant=minbase rootfs, docker import-ed
#   ferry/python:latest      runtimes/python  (Debian's Python 3 + runner.py)
#   ferry/nodejs:latest      runtimes/nodejs  (Debian's Node.js + runner.js)
#   ferry/go:latest          runtimes/go      (runs the built binary /var/task/bootstrap)
#   ferry/go-builder:latest  runtimes/go      (Go toolchain + runner source + ferry-build)
#
# Only images that are missing or stale are built: every image carries the label
# ferry.image.hash, a hash of its inputs (Dockerfile, runner files, base hash), and
# an image whose label matches is left alone. --force rebuilds all of them (the
# cached base rootfs under .cache/images is reused; delete it to debootstrap anew).
#
# Environment:
#   FERRY_DEBIAN_MIRROR     Debian mirror (default: the machine's apt configuration)
#   FERRY_DEBIAN_SECURITY   security mirror (default: the machine's, or <mirror>-security)
#   FERRY_IMAGES            images to build, e.g. "python nodejs" (default: all)
#   FERRY_IMAGE_TAG         tag of the runtime images (default: latest; Ferry reads it too)
set -euo pipefail

cd "$(dirname "$0")/.."

SUITE=bookworm
BASE_IMAGE=ferry/base:$SUITE
TAG=${FERRY_IMAGE_TAG:-latest}
CACHE_DIR=.cache/images
FORCE=0

for arg in "$@"; do
	case $arg in
	--force) FORCE=1 ;;
	-h | --help)
		sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "images.sh: unknown argument $arg (usage: scripts/images.sh [--force])" >&2
		exit 2
		;;
	esac
done

log() { printf '==> %s\n' "$*" >&2; }
die() {
	printf 'images.sh: %s\n' "$*" >&2
	exit 1
}

command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "cannot talk to the Docker engine"

# sha256 of stdin, hex only.
hash_stdin() { sha256sum | cut -c1-64; }

# Hash of files (path + content), independent of the order given.
hash_files() {
	local f
	for f in $(printf '%s\n' "$@" | LC_ALL=C sort); do
		printf '%s\n' "$f"
		sha256sum <"$f"
	done | hash_stdin
}

# The ferry.image.hash label of an image, empty when the image is missing.
image_hash() {
	docker image inspect --format '{{ index .Config.Labels "ferry.image.hash" }}' "$1" 2>/dev/null || true
}

# uptodate IMAGE HASH: whether IMAGE exists with that hash (and --force is off).
uptodate() {
	[ "$FORCE" = 0 ] && [ "$(image_hash "$1")" = "$2" ]
}

# First URI of the machine's apt sources whose suites match the pattern $1.
apt_uri() {
	local pattern=$1 f
	{
		# deb822 .sources files: URIs and Suites fields of one stanza.
		for f in /etc/apt/sources.list.d/*.sources; do
			[ -r "$f" ] || continue
			awk -v pat="$pattern" '
				/^[ \t]*$/ { if (uri != "" && suites ~ pat) { print uri; exit } uri = ""; suites = ""; next }
				/^URIs:/ { uri = $2 }
				/^Suites:/ { suites = $0 }
				END { if (uri != "" && suites ~ pat) print uri }' "$f"
		done
		# one-line format.
		for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
			[ -r "$f" ] || continue
			awk -v pat="$pattern" '$1 == "deb" {
				i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
				if ($(i + 1) ~ pat) { print $i; exit } }' "$f"
		done
	} | head -n1
}

debian_mirror() {
	local m=${FERRY_DEBIAN_MIRROR:-}
	[ -n "$m" ] || m=$(apt_uri '(^|[ \t])[a-z]+([ \t]|-updates|$)')
	[ -n "$m" ] || die "no Debian mirror found in the apt configuration; set FERRY_DEBIAN_MIRROR"
	printf '%s\n' "${m%/}"
}

security_mirror() {
	local m=${FERRY_DEBIAN_SECURITY:-}
	[ -n "$m" ] || m=$(apt_uri '-security')
	[ -n "$m" ] || m="$(debian_mirror)-security"
	printf '%s\n' "${m%/}"
}

# build_rootfs DIR MIRROR SECURITY: a trimmed minbase rootfs with current updates.
# Its text is part of the base hash, so editing it rebuilds the base.
build_rootfs() {
	local dir=$1 mirror=$2 security=$3
	debootstrap --variant=minbase "$SUITE" "$dir" "$mirror" >&2
	rm -f "$dir/etc/apt/sources.list"
	cat >"$dir/etc/apt/sources.list.d/debian.sources" <<-EOF
		Types: deb
		URIs: $mirror
		Suites: $SUITE $SUITE-updates
		Components: main

		Types: deb
		URIs: $security
		Suites: $SUITE-security
		Components: main
	EOF
	# Later apt installs (the runtime images) skip docs, man pages and translations too.
	cat >"$dir/etc/dpkg/dpkg.cfg.d/ferry-minimal" <<-'EOF'
		path-exclude /usr/share/doc/*
		path-include /usr/share/doc/*/copyright
		path-exclude /usr/share/man/*
		path-exclude /usr/share/info/*
		path-exclude /usr/share/locale/*
		path-exclude /usr/share/lintian/*
	EOF
	cat >"$dir/etc/apt/apt.conf.d/90ferry" <<-'EOF'
		APT::Install-Recommends "false";
		APT::Install-Suggests "false";
		Acquire::Languages "none";
		Dpkg::Use-Pty "false";
	EOF
	chroot "$dir" apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive chroot "$dir" apt-get -y -qq upgrade >&2
	chroot "$dir" apt-get clean
	rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin \
		"$dir"/var/cache/debconf/*-old "$dir"/var/lib/dpkg/*-old "$dir"/var/log/* \
		"$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/usr/share/locale/* \
		"$dir"/usr/share/lintian/*
	find "$dir/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
	find "$dir/usr/share/doc" -mindepth 1 -type d -empty -delete
	: >"$dir/etc/resolv.conf"
	: >"$dir/etc/hostname"
}

base_hash() {
	{
		echo "suite=$SUITE variant=minbase"
		declare -f build_rootfs
	} | hash_stdin
}

ensure_base() {
	local hash tarball mirror security tmp
	hash=$(base_hash)
	if uptodate "$BASE_IMAGE" "$hash"; then
		log "$BASE_IMAGE is up to date"
		return
	fi
	tarball=$CACHE_DIR/base-$SUITE-${hash:0:16}.tar
	if [ ! -s "$tarball" ]; then
		[ "$(id -u)" = 0 ] || die "building the base rootfs needs root (debootstrap, chroot)"
		if ! command -v debootstrap >/dev/null; then
			log "installing debootstrap"
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2 ||
				{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2; }
		fi
		mirror=$(debian_mirror)
		security=$(security_mirror)
		mkdir -p "$CACHE_DIR"
		tmp=$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")
		# shellcheck disable=SC2064 # expand now: tmp is local
		trap "rm -rf '$tmp'" EXIT
		log "debootstrap $SUITE from $mirror (about a minute)"
		build_rootfs "$tmp/rootfs" "$mirror" "$security"
		tar --numeric-owner -C "$tmp/rootfs" -cf "$tmp/rootfs.tar" .
		mv "$tmp/rootfs.tar" "$tarball"
		rm -rf "$tmp"
		trap - EXIT
		# Older tarballs of other recipes are of no further use.
		find "$CACHE_DIR" -maxdepth 1 -name "base-$SUITE-*.tar" ! -path "$tarball" -delete
	fi
	log "importing $tarball as $BASE_IMAGE"
	docker import \
		--change "LABEL ferry.image.hash=$hash" \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'ENV LANG=C.UTF-8' \
		--change 'CMD ["/bin/bash"]' \
		"$tarball" "$BASE_IMAGE" >/dev/null
}

# build_image NAME DOCKERFILE CONTEXT FILES...: builds NAME from the Dockerfile when
# the hash of FILES plus the base image's hash differs from NAME's label.
build_image() {
	local name=$1 dockerfile=$2 context=$3
	shift 3
	local hash
	hash=$({
		echo "base=$(image_hash "$BASE_IMAGE")"
		hash_files "$dockerfile" "$@"
	} | hash_stdin)
	if uptodate "$name" "$hash"; then
		log "$name is up to date"
		return
	fi
	log "building $name"
	local start=$SECONDS out
	out=$(mktemp)
	# Host networking: apt inside the build reaches whatever mirror the host reaches.
	if ! docker build --network host \
		--build-arg "BASE=$BASE_IMAGE" \
		--build-arg "FERRY_IMAGE_HASH=$hash" \
		-f "$dockerfile" -t "$name" "$context" >"$out" 2>&1; then
		cat "$out" >&2
		rm -f "$out"
		die "building $name failed"
	fi
	rm -f "$out"
	log "built $name in $((SECONDS - start))s ($(docker image inspect --format '{{.Size}}' "$name" | awk '{printf "%.0f MB", $1/1e6}'))"
}

wanted() {
	[ -z "${FERRY_IMAGES:-}" ] && return 0
	case " $FERRY_IMAGES " in *" $1 "*) return 0 ;; esac
	return 1
}

ensure_base
if wanted python; then
	build_image ferry/python:$TAG runtimes/python/Dockerfile runtimes/python \
		runtimes/python/runner.py
fi
if wanted nodejs; then
	build_image ferry/nodejs:$TAG runtimes/nodejs/Dockerfile runtimes/nodejs \
		runtimes/nodejs/runner.js
fi
if wanted go; then
	build_image ferry/go:$TAG runtimes/go/Dockerfile runtimes/go
	build_image ferry/go-builder:$TAG runtimes/go/Dockerfile.builder runtimes/go \
		runtimes/go/ferry-build runtimes/go/_runner/*.go
fi
