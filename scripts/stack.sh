#!/usr/bin/env bash
# Local stack: PostgreSQL, Temporal dev server and an S3 server (versitygw) on loopback.
#
#   scripts/stack.sh up|down|status dev|test [postgres|temporal|s3 ...]
#
# `up` is idempotent: a service that already answers is reused, otherwise it is
# started in the background and waited for. Data, logs and pid files live under
# .data/<env>/. `down` stops only the processes that this script started for that
# env (pid files) plus that env's own PostgreSQL cluster; it never touches the other env.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
. scripts/env.sh

usage() {
	echo "usage: scripts/stack.sh up|down|status dev|test [postgres|temporal|s3 ...]" >&2
	exit 2
}

[ $# -ge 2 ] || usage
action=$1
ferry_env "$2" || usage
shift 2
services=("$@")
[ ${#services[@]} -gt 0 ] || services=(postgres temporal s3)
for s in "${services[@]}"; do
	case "$s" in postgres | temporal | s3) ;; *) usage ;; esac
done
DATA=$STACK_DATA_DIR
HOST=$STACK_HOST
TEMPORAL=$ROOT/bin/temporal
VERSITYGW=$ROOT/bin/versitygw

log() { printf '[stack %s] %s\n' "$STACK_ENV" "$*" >&2; }
die() {
	log "ERROR: $*"
	exit 1
}

# ---------------------------------------------------------------- helpers

# port_open PORT: something accepts TCP connections on HOST:PORT.
port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

pidfile_pid() { [ -f "$1" ] && cat "$1" 2>/dev/null || true; }

# wait_for NAME SECONDS PID CHECK...: run CHECK until it succeeds; give up when
# the time is over or the process PID (if given) died.
wait_for() {
	local name=$1 secs=$2 pid=$3
	shift 3
	local deadline=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		if [ -n "$pid" ] && ! pid_alive "$pid"; then
			return 1
		fi
		if [ $SECONDS -ge $deadline ]; then
			log "$name did not answer within ${secs}s"
			return 1
		fi
		sleep 0.3
	done
}

# start_bg PIDFILE LOGFILE CMD...: start CMD detached from this shell (own
# session, so Ctrl-C on `make dev` does not kill the stack) and record its pid.
start_bg() {
	local pidfile=$1 logfile=$2
	shift 2
	setsid nohup "$@" >>"$logfile" 2>&1 </dev/null &
	echo $! >"$pidfile"
}

# stop_pidfile NAME PIDFILE: TERM the recorded process, KILL it after 20 s.
stop_pidfile() {
	local name=$1 pidfile=$2 pid
	pid=$(pidfile_pid "$pidfile")
	if ! pid_alive "$pid"; then
		if [ -f "$pidfile" ]; then
			log "$name: not running (removing stale pid file)"
		else
			log "$name: nothing to stop (no pid file)"
		fi
		rm -f "$pidfile"
		return 0
	fi
	log "$name: stopping pid $pid"
	kill -TERM "$pid" 2>/dev/null || true
	local i
	for ((i = 0; i < 100; i++)); do
		pid_alive "$pid" || break
		sleep 0.2
	done
	if pid_alive "$pid"; then
		log "$name: still running, killing"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$pidfile"
}

# ---------------------------------------------------------------- PostgreSQL

PGDATA_DIR=$DATA/pg
# PostgreSQL runs as the postgres user, which cannot reach a checkout under a
# private folder (e.g. /root). Then the cluster lives under /var/lib and
# .data/<env>/pg is a symlink to it.
if [ -L "$PGDATA_DIR" ]; then
	PGDATA_DIR=$(readlink -f "$PGDATA_DIR")
elif [ "$action" = up ] && [ "$(id -u)" = 0 ] && [ ! -e "$PGDATA_DIR" ]; then
	mkdir -p "$DATA"
	if ! runuser -u postgres -- test -x "$DATA" 2>/dev/null; then
		alt=/var/lib/ferry-stack/$(printf %s "$ROOT" | md5sum | cut -c1-12)/$STACK_ENV/pg
		log "postgres: user postgres cannot reach $DATA; cluster goes to $alt"
		mkdir -p "$(dirname "$alt")"
		ln -s "$alt" "$PGDATA_DIR"
		PGDATA_DIR=$alt
	fi
fi

pg_bindir() {
	local d
	if d=$(command -v initdb 2>/dev/null); then
		dirname "$(readlink -f "$d")"
		return
	fi
	# Debian keeps the server binaries off PATH; take the newest version.
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
	[ -n "$d" ] || die "PostgreSQL server binaries not found: run scripts/tools.sh"
	echo "$d"
}

# as_postgres CMD...: PostgreSQL refuses to run as root, so root runs it as the
# `postgres` user; everybody else runs it as themselves.
as_postgres() {
	if [ "$(id -u)" = 0 ]; then
		# From /, which postgres can always enter (all paths here are absolute).
		(cd / && runuser -u postgres -- "$@")
	else
		"$@"
	fi
}

pg_psql() {
	"$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$HOST" -p "$STACK_PG_PORT" "$@"
}

pg_ready() { "$PGBIN/pg_isready" -q -h "$HOST" -p "$STACK_PG_PORT"; }

pg_running() { as_postgres "$PGBIN/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1; }

pg_up() {
	PGBIN=$(pg_bindir)
	if [ ! -s "$PGDATA_DIR/PG_VERSION" ]; then
		log "postgres: initdb $PGDATA_DIR"
		mkdir -p "$PGDATA_DIR"
		if [ "$(id -u)" = 0 ]; then
			chown postgres: "$PGDATA_DIR"
			runuser -u postgres -- test -w "$PGDATA_DIR" ||
				die "user postgres cannot write $PGDATA_DIR"
		fi
		chmod 700 "$PGDATA_DIR"
		as_postgres "$PGBIN/initdb" -D "$PGDATA_DIR" -U ferry --auth=trust \
			--encoding=UTF8 --locale=C.UTF-8 >"$DATA/initdb.log" 2>&1 ||
			die "initdb failed, see $DATA/initdb.log"
	fi
	if pg_running; then
		log "postgres: already running on port $STACK_PG_PORT (reusing)"
	elif port_open "$STACK_PG_PORT"; then
		die "port $STACK_PG_PORT is taken by something other than the cluster in $PGDATA_DIR"
	else
		local opts="-p $STACK_PG_PORT -k /tmp -c listen_addresses=$HOST"
		# Test data is disposable: trade durability for speed.
		if [ "$STACK_ENV" = test ]; then
			opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
		fi
		log "postgres: starting on port $STACK_PG_PORT"
		as_postgres "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGDATA_DIR/server.log" -w -t 60 \
			-o "$opts" start >/dev/null ||
			die "postgres did not start, see $PGDATA_DIR/server.log"
	fi
	wait_for postgres 60 "" pg_ready || die "postgres not ready, see $PGDATA_DIR/server.log"
	# A cluster made by hand may lack the ferry role: add it over the socket.
	if ! pg_psql -U ferry -d postgres -c 'select 1' >/dev/null 2>&1; then
		log "postgres: creating role ferry"
		as_postgres "$PGBIN/psql" -X -q -h /tmp -p "$STACK_PG_PORT" -d postgres \
			-c 'create role ferry superuser login' ||
			die "cannot create role ferry"
	fi
	if [ "$(pg_psql -U ferry -d postgres -tAc "select 1 from pg_database where datname = 'ferry'")" != 1 ]; then
		log "postgres: creating database ferry"
		pg_psql -U ferry -d postgres -c 'create database ferry owner ferry'
	fi
}

pg_down() {
	PGBIN=$(pg_bindir)
	if [ -s "$PGDATA_DIR/PG_VERSION" ] && pg_running; then
		log "postgres: stopping"
		as_postgres "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 60 stop >/dev/null
	else
		log "postgres: not running"
	fi
}

pg_status() {
	PGBIN=$(pg_bindir)
	if pg_ready; then
		echo "postgres  up    $FERRY_DATABASE_URL"
	else
		echo "postgres  down  port $STACK_PG_PORT"
	fi
}

# ---------------------------------------------------------------- Temporal

TEMPORAL_PID=$DATA/temporal.pid
TEMPORAL_LOG=$DATA/temporal.log

# Ready means the frontend answers and the namespace exists (start-dev creates
# it while starting).
temporal_ready() {
	"$TEMPORAL" operator namespace describe --address "$HOST:$STACK_TEMPORAL_PORT" \
		--namespace "$FERRY_TEMPORAL_NAMESPACE" --command-timeout 3s >/dev/null 2>&1
}

temporal_up() {
	[ -x "$TEMPORAL" ] || die "$TEMPORAL missing: run scripts/tools.sh"
	local pid
	pid=$(pidfile_pid "$TEMPORAL_PID")
	if pid_alive "$pid"; then
		log "temporal: already running (pid $pid)"
	elif port_open "$STACK_TEMPORAL_PORT"; then
		rm -f "$TEMPORAL_PID"
		temporal_ready || die "port $STACK_TEMPORAL_PORT is taken by something that is not Temporal"
		log "temporal: a server started elsewhere answers on port $STACK_TEMPORAL_PORT (reusing, will not stop it)"
		pid=
	else
		log "temporal: starting on port $STACK_TEMPORAL_PORT (UI $STACK_TEMPORAL_UI_PORT), log $TEMPORAL_LOG"
		# The pragmas and eager start/execution are what make the dev server fast
		# enough for the invoke hot path (measured: 10 ms p50 for a workflow with
		# one local activity, against 51 ms without eager start).
		start_bg "$TEMPORAL_PID" "$TEMPORAL_LOG" "$TEMPORAL" server start-dev \
			--ip "$HOST" --port "$STACK_TEMPORAL_PORT" --ui-port "$STACK_TEMPORAL_UI_PORT" \
			--db-filename "$DATA/temporal.db" \
			--sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=normal \
			--dynamic-config-value system.enableEagerWorkflowStart=true \
			--dynamic-config-value system.enableActivityEagerExecution=true \
			--search-attribute FerryFunction=Keyword \
			--search-attribute FerryRuntime=Keyword \
			--search-attribute FerryStatus=Keyword \
			--log-format json --log-level warn
		pid=$(pidfile_pid "$TEMPORAL_PID")
	fi
	wait_for temporal 120 "$pid" temporal_ready ||
		die "temporal did not become ready, see $TEMPORAL_LOG"
	temporal_search_attributes
}

# A reused server may have been started without Ferry's search attributes.
temporal_search_attributes() {
	local have name
	have=$("$TEMPORAL" operator search-attribute list --address "$HOST:$STACK_TEMPORAL_PORT" -o json 2>/dev/null || true)
	for name in FerryFunction FerryRuntime FerryStatus; do
		case "$have" in *"\"$name\""*) continue ;; esac
		log "temporal: adding search attribute $name"
		"$TEMPORAL" operator search-attribute create --address "$HOST:$STACK_TEMPORAL_PORT" \
			--name "$name" --type Keyword >/dev/null 2>&1 ||
			log "temporal: WARNING: could not add search attribute $name"
	done
}

temporal_down() { stop_pidfile temporal "$TEMPORAL_PID"; }

temporal_status() {
	if [ -x "$TEMPORAL" ] && temporal_ready; then
		echo "temporal  up    $FERRY_TEMPORAL_ADDRESS  UI http://$HOST:$STACK_TEMPORAL_UI_PORT"
	else
		echo "temporal  down  port $STACK_TEMPORAL_PORT"
	fi
}

# ---------------------------------------------------------------- S3 (versitygw)

S3_PID=$DATA/s3.pid
S3_LOG=$DATA/s3.log
S3_URL=http://$HOST:$STACK_S3_PORT

# s3_curl METHOD PATH: a SigV4-signed request with the root credentials; prints
# the HTTP status.
s3_curl() {
	local method=(-X "$1")
	[ "$1" = HEAD ] && method=(--head)
	# The payload is always empty: its SHA-256 is a constant that S3 requires.
	curl -s -o /dev/null -w '%{http_code}' --max-time 5 "${method[@]}" \
		-H 'x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' \
		--aws-sigv4 "aws:amz:us-east-1:s3" --user "$STACK_S3_ACCESS_KEY:$STACK_S3_SECRET_KEY" \
		"$S3_URL$2"
}

# Ready means a signed ListBuckets succeeds, which also proves the credentials.
s3_ready() { [ "$(s3_curl GET /)" = 200 ]; }

s3_up() {
	[ -x "$VERSITYGW" ] || die "$VERSITYGW missing: run scripts/tools.sh"
	local pid
	pid=$(pidfile_pid "$S3_PID")
	if pid_alive "$pid"; then
		log "s3: already running (pid $pid)"
	elif port_open "$STACK_S3_PORT"; then
		rm -f "$S3_PID"
		s3_ready || die "port $STACK_S3_PORT is taken by something that does not accept the ferry S3 credentials"
		log "s3: a server started elsewhere answers on port $STACK_S3_PORT (reusing, will not stop it)"
		pid=
	else
		mkdir -p "$DATA/s3"
		log "s3: starting versitygw on port $STACK_S3_PORT, data $DATA/s3, log $S3_LOG"
		start_bg "$S3_PID" "$S3_LOG" env \
			ROOT_ACCESS_KEY_ID="$STACK_S3_ACCESS_KEY" ROOT_SECRET_ACCESS_KEY="$STACK_S3_SECRET_KEY" \
			"$VERSITYGW" --quiet --port "$HOST:$STACK_S3_PORT" posix "$DATA/s3"
		pid=$(pidfile_pid "$S3_PID")
	fi
	wait_for s3 60 "$pid" s3_ready || die "s3 did not become ready, see $S3_LOG"
	local code
	code=$(s3_curl HEAD "/$STACK_BUCKET")
	if [ "$code" != 200 ]; then
		log "s3: creating bucket $STACK_BUCKET"
		code=$(s3_curl PUT "/$STACK_BUCKET")
		[ "$code" = 200 ] || die "creating bucket $STACK_BUCKET failed with HTTP $code"
	fi
}

s3_down() { stop_pidfile s3 "$S3_PID"; }

s3_status() {
	if s3_ready; then
		echo "s3        up    $S3_URL  bucket $STACK_BUCKET  (access key $STACK_S3_ACCESS_KEY)"
	else
		echo "s3        down  port $STACK_S3_PORT"
	fi
}

# ---------------------------------------------------------------- main

# Function name prefix per service.
prefix() { case "$1" in postgres) echo pg ;; *) echo "$1" ;; esac; }

case "$action" in
up)
	mkdir -p "$DATA"
	for s in "${services[@]}"; do "$(prefix "$s")_up"; done
	log "up: ${services[*]}"
	;;
down)
	# Reverse order: the servers that depend on others stop first.
	for ((i = ${#services[@]} - 1; i >= 0; i--)); do "$(prefix "${services[i]}")_down"; done
	;;
status)
	for s in "${services[@]}"; do "$(prefix "$s")_status"; done
	;;
*) usage ;;
esac
