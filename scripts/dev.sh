#!/usr/bin/env bash
# `make dev`: bring the dev stack up, build bin/ferry, print the addresses and run
# `ferry server` in the foreground. Ctrl-C stops the server; the stack keeps
# running for the next start (`make stop` stops it).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="/usr/local/go/bin:$PATH"
. scripts/env.sh
ferry_env dev

scripts/stack.sh up dev
go build -o bin/ferry ./cmd/ferry
eval "$(scripts/env.sh dev)"
# Secrets need a key: the dev stack keeps its own beside its data (production
# sets FERRY_SECRETS_KEY or FERRY_SECRETS_KEY_FILE).
if [ -z "${FERRY_SECRETS_KEY:-}" ] && [ -z "${FERRY_SECRETS_KEY_FILE:-}" ]; then
	export FERRY_SECRETS_KEY_FILE="$FERRY_DATA_DIR/secrets.key"
	if [ ! -s "$FERRY_SECRETS_KEY_FILE" ]; then
		(umask 077 && head -c 32 /dev/urandom | base64 >"$FERRY_SECRETS_KEY_FILE")
	fi
fi

cat <<MSG

  Ferry dev stack
  ---------------
  API            http://$FERRY_LISTEN
  Metrics        http://$FERRY_METRICS_LISTEN/metrics  (Prometheus, no key: keep it internal)
  Temporal       $FERRY_TEMPORAL_ADDRESS  (namespace $FERRY_TEMPORAL_NAMESPACE, task queue $FERRY_TASK_QUEUE)
  Temporal UI    http://$STACK_HOST:$STACK_TEMPORAL_UI_PORT
  S3             http://$FERRY_S3_ENDPOINT  bucket $FERRY_S3_BUCKET  key $FERRY_S3_ACCESS_KEY / $FERRY_S3_SECRET_KEY
  PostgreSQL     $FERRY_DATABASE_URL
  Data and logs  $FERRY_DATA_DIR
  Secrets key    ${FERRY_SECRETS_KEY_FILE:-FERRY_SECRETS_KEY}

  Same settings in another shell:  eval "\$(scripts/env.sh dev)"
  Stop the stack:                  make stop

MSG
exec bin/ferry server
