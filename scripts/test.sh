#!/usr/bin/env bash
# Runs the whole test suite the way CI does. Installs nothing Go cannot fetch
# itself; browser tests install Chromium through scripts/ensure-chromium.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS="${GOFLAGS:-}"
echo "== gofmt"
unformatted=$(gofmt -l shared hub agent)
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
echo "== go vet"
go vet ./shared/... ./hub/... ./agent/...
echo "== go build"
make -s build
echo "== chromium for the browser tests"
scripts/ensure-chromium.sh
echo "== go test -race"
log=$(mktemp -t ferry-test.XXXXXX.log)
status=0
go test -race -count=1 -timeout 12m ./shared/... ./hub/... ./agent/... 2>&1 | tee "$log" || status=$?
if [ "$status" -ne 0 ]; then
  # A failing end-to-end test logs its processes' output after its own
  # messages; repeat the tests' lines here so the end of the output says
  # what failed (CI shows the end).
  echo "== what failed (test lines of the failing packages; full log: $log)"
  grep -E '^\s*(--- FAIL|[A-Za-z0-9_]+_test\.go:[0-9]+: |panic: |FAIL\s|WARNING: DATA RACE|testing\.go:[0-9]+: race detected)' "$log" | grep -v 'proc.go' | tail -60 || true
else
  rm -f "$log"
fi
exit "$status"
