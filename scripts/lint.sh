#!/usr/bin/env bash
# `make lint`: gofmt, staticcheck over the whole module and Temporal's workflowcheck
# over the workflow code (config in workflows/workflowcheck.yaml). Both are
# pinned and installed into ./bin by scripts/tools.sh (`make tools`).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="/usr/local/go/bin:$PATH"

for tool in staticcheck workflowcheck; do
	if [ ! -x "bin/$tool" ]; then
		echo "[lint] bin/$tool missing: run 'make tools'" >&2
		exit 1
	fi
done

echo "[lint] gofmt -l" >&2
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.cache/*'))
if [ -n "$unformatted" ]; then
	echo "[lint] not gofmt-ed (run gofmt -w):" >&2
	echo "$unformatted" >&2
	exit 1
fi
echo "[lint] staticcheck ./..." >&2
bin/staticcheck ./...
echo "[lint] workflowcheck ./workflows/..." >&2
bin/workflowcheck -config workflows/workflowcheck.yaml ./workflows/...
