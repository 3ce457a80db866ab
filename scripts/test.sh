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
go test -race -count=1 -timeout 12m ./shared/... ./hub/... ./agent/... 2>&1 | tee /tmp/ferry-test.log
