#!/usr/bin/env bash
# The one place where the ports and credentials of the local stacks are defined.
#
#   scripts/env.sh dev|test        prints `export FERRY_...=...` lines (eval them)
#   . scripts/env.sh; ferry_env X  sets the same variables plus the STACK_* ones
#                                  that scripts/stack.sh uses
#
# Every port can be overridden, e.g. FERRY_DEV_PG_PORT=6543 make dev.

ferry_env() {
	local env=${1:-}
	case "$env" in
	dev)
		STACK_PG_PORT=${FERRY_DEV_PG_PORT:-5433}
		STACK_TEMPORAL_PORT=${FERRY_DEV_TEMPORAL_PORT:-7233}
		STACK_TEMPORAL_UI_PORT=${FERRY_DEV_TEMPORAL_UI_PORT:-8233}
		STACK_S3_PORT=${FERRY_DEV_S3_PORT:-9000}
		STACK_API_PORT=${FERRY_DEV_API_PORT:-8080}
		STACK_METRICS_PORT=${FERRY_DEV_METRICS_PORT:-9464}
		STACK_BUCKET=ferry
		;;
	test)
		STACK_PG_PORT=${FERRY_TEST_PG_PORT:-15433}
		STACK_TEMPORAL_PORT=${FERRY_TEST_TEMPORAL_PORT:-17233}
		STACK_TEMPORAL_UI_PORT=${FERRY_TEST_TEMPORAL_UI_PORT:-18233}
		STACK_S3_PORT=${FERRY_TEST_S3_PORT:-19000}
		STACK_API_PORT=${FERRY_TEST_API_PORT:-18080}
		STACK_METRICS_PORT=${FERRY_TEST_METRICS_PORT:-19464}
		STACK_BUCKET=ferry-test
		;;
	*)
		echo "usage: env.sh dev|test" >&2
		return 2
		;;
	esac
	STACK_ENV=$env
	STACK_HOST=127.0.0.1
	STACK_S3_ACCESS_KEY=ferry
	STACK_S3_SECRET_KEY=ferry-secret
	# Absolute, because `go test` runs every package in its own directory.
	STACK_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
	STACK_DATA_DIR=$STACK_ROOT/.data/$env

	FERRY_DATABASE_URL="postgres://ferry@$STACK_HOST:$STACK_PG_PORT/ferry?sslmode=disable"
	FERRY_TEMPORAL_ADDRESS="$STACK_HOST:$STACK_TEMPORAL_PORT"
	FERRY_TEMPORAL_NAMESPACE=default
	FERRY_TEMPORAL_UI_URL="http://$STACK_HOST:$STACK_TEMPORAL_UI_PORT"
	FERRY_TASK_QUEUE=ferry
	FERRY_S3_ENDPOINT="$STACK_HOST:$STACK_S3_PORT"
	FERRY_S3_ACCESS_KEY=$STACK_S3_ACCESS_KEY
	FERRY_S3_SECRET_KEY=$STACK_S3_SECRET_KEY
	FERRY_S3_BUCKET=$STACK_BUCKET
	FERRY_LISTEN="$STACK_HOST:$STACK_API_PORT"
	FERRY_METRICS_LISTEN="$STACK_HOST:$STACK_METRICS_PORT"
	FERRY_DATA_DIR=$STACK_DATA_DIR
	# Tests of `make test` must fail, not skip, when a service is missing.
	if [ "$env" = test ]; then FERRY_REQUIRE_SERVICES=1; else FERRY_REQUIRE_SERVICES=; fi
}

ferry_env_vars="FERRY_DATABASE_URL FERRY_TEMPORAL_ADDRESS FERRY_TEMPORAL_NAMESPACE FERRY_TEMPORAL_UI_URL FERRY_TASK_QUEUE
FERRY_S3_ENDPOINT FERRY_S3_ACCESS_KEY FERRY_S3_SECRET_KEY FERRY_S3_BUCKET FERRY_LISTEN FERRY_METRICS_LISTEN FERRY_DATA_DIR
FERRY_REQUIRE_SERVICES"

# Executed (not sourced): print the exports.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -euo pipefail
	ferry_env "${1:-}" || exit 2
	for v in $ferry_env_vars; do
		if [ -n "${!v}" ]; then
			printf 'export %s=%q\n' "$v" "${!v}"
		else
			printf 'unset %s\n' "$v"
		fi
	done
fi
