#!/usr/bin/env bash
# `make test`: start the test stack (own ports and data under .data/test, never
# the dev stack), run go vet and every test with the race detector against it,
# and stop the stack again on exit, also on failure or Ctrl-C.
#
# The test stack starts from empty data each run (KEEP_TEST_DATA=1 keeps it).
# Extra `go test` flags can be passed in GOTESTFLAGS, e.g. GOTESTFLAGS='-run TestX',
# and the packages in TEST_PACKAGES (default ./...).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="/usr/local/go/bin:$PATH"
. scripts/env.sh
ferry_env test

# Cheap checks first, before the stack starts: go.mod/go.sum must be tidy, the
# server must still build off Linux (the pidfd code is Linux-only), and the
# linters must be clean (under a minute with a warm cache).
if ! diff=$(go mod tidy -diff 2>&1); then
	printf '%s\n' "$diff" >&2
	echo "[test] go.mod/go.sum are not tidy: run 'go mod tidy' and commit the result" >&2
	exit 1
fi
echo "[test] GOOS=darwin and GOOS=windows go build ./cmd/ferry" >&2
GOOS=darwin go build -o /dev/null ./cmd/ferry
GOOS=windows go build -o /dev/null ./cmd/ferry
scripts/lint.sh

# Two `make test` at once (also from two checkouts) would share the test ports
# and stop each other's stack: take turns.
exec 9>"${TMPDIR:-/tmp}/ferry-test-stack-$STACK_PG_PORT.lock"
if ! flock -n 9; then
	echo "[test] another make test is running; waiting for it" >&2
	flock 9
fi

trap 'scripts/stack.sh down test' EXIT
scripts/stack.sh down test
if [ -z "${KEEP_TEST_DATA:-}" ]; then
	# The cluster may live elsewhere behind a symlink (see stack.sh).
	if [ -L "$STACK_DATA_DIR/pg" ]; then rm -rf "$(readlink -f "$STACK_DATA_DIR/pg")"; fi
	rm -rf "$STACK_DATA_DIR"
fi
scripts/stack.sh up test
eval "$(scripts/env.sh test)"
env | grep '^FERRY_' | sort >&2

# shellcheck disable=SC2206 # a list of package patterns
pkgs=(${TEST_PACKAGES:-./...})
echo "[test] go vet ${pkgs[*]}" >&2
go vet "${pkgs[@]}"

echo "[test] go test -race ${pkgs[*]} (raw JSON in $STACK_DATA_DIR/go-test.json)" >&2
go build -o bin/testsummary ./scripts/testsummary
# shellcheck disable=SC2086 # GOTESTFLAGS is a list of flags
go test -race -count=1 -timeout 40m -json ${GOTESTFLAGS:-} "${pkgs[@]}" 2>&1 |
	bin/testsummary -raw "$STACK_DATA_DIR/go-test.json"
