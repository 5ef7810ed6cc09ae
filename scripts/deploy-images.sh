#!/usr/bin/env bash
# Builds the images of the production topology (docker-compose.yml, the cluster
# test) locally, without an image registry, on Ferry's debootstrap-made base
# (scripts/images.sh makes it) from binaries built from the Go module proxy
# (scripts/tools.sh) and Debian's packages:
#
#   ferry/ferry:local        ferry (built here, static)         deploy/ferry
#   ferry/temporal:local     temporal-server + temporal-sql-tool deploy/temporal
#   ferry/temporal-ui:local  temporal-ui-server                 deploy/temporal-ui
#   ferry/postgres:local     Debian's PostgreSQL                deploy/postgres
#   ferry/s3:local           versitygw                          deploy/s3
#
# Like scripts/images.sh, an image whose ferry.image.hash label matches its inputs
# (Dockerfile, files, binaries, base) is left alone; --force rebuilds them all.
#
# Environment:
#   FERRY_DEPLOY_TAG     tag of these images (default: local)
#   FERRY_DEPLOY_IMAGES  images to build, e.g. "ferry temporal" (default: all)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="/usr/local/go/bin:$PATH"
TAG=${FERRY_DEPLOY_TAG:-local}
BASE_IMAGE=ferry/base:bookworm
FORCE=0
for arg in "$@"; do
	case $arg in
	--force) FORCE=1 ;;
	*)
		echo "deploy-images.sh: unknown argument $arg (usage: scripts/deploy-images.sh [--force])" >&2
		exit 2
		;;
	esac
done

log() { printf '==> %s\n' "$*" >&2; }
die() {
	printf 'deploy-images.sh: %s\n' "$*" >&2
	exit 1
}

docker info >/dev/null 2>&1 || die "cannot talk to the Docker engine"
[ "$(go env GOOS)" = linux ] || die "build on Linux: the images take the binaries of ./bin as they are"
# The base image only (FERRY_IMAGES names no runtime image).
FERRY_IMAGES=base bash scripts/images.sh

STAGE=$(mktemp -d "${TMPDIR:-/tmp}/ferry-deploy.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT

image_hash() {
	docker image inspect --format '{{ index .Config.Labels "ferry.image.hash" }}' "$1" 2>/dev/null || true
}

wanted() {
	[ -z "${FERRY_DEPLOY_IMAGES:-}" ] && return 0
	case " $FERRY_DEPLOY_IMAGES " in *" $1 "*) return 0 ;; esac
	return 1
}

# build NAME FILES...: builds ferry/NAME:TAG from deploy/NAME/Dockerfile with a
# context of FILES (copied flat) unless the image carries the same input hash.
build() {
	local name=$1 image=ferry/$1:$TAG ctx=$STAGE/$1 hash f
	shift
	mkdir -p "$ctx"
	cp deploy/"$name"/Dockerfile "$ctx/"
	for f in "$@"; do cp "$f" "$ctx/"; done
	hash=$({
		echo "base=$(image_hash "$BASE_IMAGE")"
		(cd "$ctx" && sha256sum -- * | LC_ALL=C sort -k2)
	} | sha256sum | cut -c1-64)
	if [ "$FORCE" = 0 ] && [ "$(image_hash "$image")" = "$hash" ]; then
		log "$image is up to date"
		return
	fi
	log "building $image"
	local start=$SECONDS out
	out=$(mktemp)
	# Host networking: apt inside the build reaches whatever mirror the host reaches.
	if ! docker build --network host --build-arg "BASE=$BASE_IMAGE" \
		--build-arg "FERRY_IMAGE_HASH=$hash" -t "$image" "$ctx" >"$out" 2>&1; then
		cat "$out" >&2
		rm -f "$out"
		die "building $image failed"
	fi
	rm -f "$out"
	log "built $image in $((SECONDS - start))s"
}

need() {
	local f
	for f in "$@"; do
		[ -x "$f" ] || die "$f missing: run scripts/tools.sh (make tools)"
	done
}

if wanted ferry; then
	CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$STAGE/bin/ferry" ./cmd/ferry
	build ferry "$STAGE/bin/ferry"
fi
if wanted temporal; then
	need bin/temporal-server bin/temporal-sql-tool
	build temporal bin/temporal-server bin/temporal-sql-tool deploy/temporal/entrypoint.sh \
		deploy/temporal/setup-schema.sh deploy/temporal/dynamicconfig.yaml
fi
if wanted temporal-ui; then
	need bin/temporal-ui-server
	# The UI server's own configuration template, from the pinned module.
	ui=$(cd scripts/temporal-ui && go list -m -f '{{.Dir}}' github.com/temporalio/ui-server/v2)
	[ -n "$ui" ] && [ -f "$ui/config/docker.yaml" ] || die "ui-server module not found: run scripts/tools.sh"
	build temporal-ui bin/temporal-ui-server "$ui/config/docker.yaml"
fi
if wanted postgres; then
	build postgres deploy/postgres/entrypoint.sh
fi
if wanted s3; then
	need bin/versitygw
	build s3 bin/versitygw
fi
