#!/bin/sh
# Creates Temporal's two PostgreSQL databases and brings their schemas to the
# version this temporal-sql-tool embeds. Idempotent: run it before every start of
# the server (and after an upgrade of it). Reads the server's own variables:
# POSTGRES_SEEDS, DB_PORT, POSTGRES_USER, POSTGRES_PWD, DBNAME, VISIBILITY_DBNAME.
set -eu
: "${POSTGRES_SEEDS:?set POSTGRES_SEEDS to the PostgreSQL host}"
plugin=${DB:-postgres12}
tool() {
	temporal-sql-tool --plugin "$plugin" --ep "$POSTGRES_SEEDS" -p "${DB_PORT:-5432}" \
		-u "${POSTGRES_USER:-}" --pw "${POSTGRES_PWD:-}" "$@"
}
for pair in "${DBNAME:-temporal}:temporal" "${VISIBILITY_DBNAME:-temporal_visibility}:visibility"; do
	db=${pair%%:*} kind=${pair#*:}
	tries=0
	# PostgreSQL may still be starting: try for a minute.
	until out=$(tool --db "$db" create-database 2>&1) || printf '%s' "$out" | grep -q 'already exists'; do
		tries=$((tries + 1))
		if [ "$tries" -ge 60 ]; then
			printf '%s\n' "$out" >&2
			echo "temporal-setup-schema: cannot create database $db" >&2
			exit 1
		fi
		sleep 1
	done
	tool --db "$db" setup-schema -v 0.0 >/dev/null
	tool --db "$db" update-schema --schema-name "postgresql/v12/$kind" >/dev/null
	echo "temporal-setup-schema: $db is at the $kind schema of $(temporal-sql-tool --version 2>/dev/null | awk '{print $NF}')"
done
