#!/usr/bin/env bash
# Brings up a local Ferry on loopback: one hub on the embedded store, a demo
# organization with Dev and Prod, two APIM stand-ins (Dev seeded) and two
# linked agents. Ctrl-C stops everything. State lives in ./data/run so a second
# `make run` reuses the same installations.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=./bin
DATA=./data/run
HUB_ADDR=${HUB_ADDR:-127.0.0.1:8080}
HUB=http://$HUB_ADDR
mkdir -p "$DATA/logs"

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo; echo "stopping Ferry…"
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

wait_http() { # url, name
  for _ in $(seq 1 100); do
    if curl -fs -o /dev/null "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "$2 did not come up at $1; see $DATA/logs/" >&2
  exit 1
}
json_field() { # field name, reads JSON on stdin
  sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"
}

$BIN/ferry-hub --listen "$HUB_ADDR" --data-dir "$DATA/hub" --public-url "$HUB" >"$DATA/logs/hub.log" 2>&1 &
pids+=($!)
wait_http "$HUB/healthz" hub
TOKEN=$(tr -d '\n' <"$DATA/hub/admin-token")
AUTH=(-H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json")

api() { # method path [body]
  curl -sS -X "$1" "${AUTH[@]}" "$HUB$2" ${3:+-d "$3"}
}
api POST /api/v1/orgs '{"name":"demo"}' >/dev/null
for env in Dev Prod; do api POST /api/v1/orgs/demo/environments "{\"name\":\"$env\"}" >/dev/null; done
# A demo organization admin for the consoles; the password is made once and
# kept in $DATA/admin-password (0600).
if [ ! -s "$DATA/admin-password" ]; then
  (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$DATA/admin-password")
fi
PASSWORD=$(cat "$DATA/admin-password")
api POST /api/v1/orgs/demo/users "{\"username\":\"admin\",\"displayName\":\"Demo Admin\",\"password\":\"$PASSWORD\"}" >/dev/null
api POST /api/v1/orgs/demo/role-bindings '{"userId":"admin","scope":"ORGANIZATION","role":"ADMIN"}' >/dev/null

$BIN/apim-sim --listen 127.0.0.1:8083 --seed deploy/seed/dev >"$DATA/logs/apim-dev.log" 2>&1 &
pids+=($!)
$BIN/apim-sim --listen 127.0.0.1:8084 >"$DATA/logs/apim-prod.log" 2>&1 &
pids+=($!)
wait_http http://127.0.0.1:8083/management/v2/environments/DEFAULT/apis apim-dev
wait_http http://127.0.0.1:8084/management/v2/environments/DEFAULT/apis apim-prod

start_agent() { # env name, apim port, agent port
  local dir="$DATA/agent-$1" args=()
  if [ ! -s "$dir/credential" ]; then
    local tok
    tok=$(api POST "/api/v1/orgs/demo/environments/$1/link-tokens" | json_field token)
    [ -n "$tok" ] || { echo "could not create a link token for $1" >&2; exit 1; }
    args=(--link-token "$tok")
  fi
  $BIN/ferry-agent --hub "$HUB" --apim-url "http://127.0.0.1:$2/management/v2" \
    --listen "127.0.0.1:$3" --data-dir "$dir" "${args[@]}" >"$DATA/logs/agent-$1.log" 2>&1 &
  pids+=($!)
  wait_http "http://127.0.0.1:$3/healthz" "agent $1"
}
start_agent Dev 8083 8090
start_agent Prod 8084 8091

for _ in $(seq 1 50); do
  online=$(api GET /api/v1/orgs/demo/installations | grep -o '"status":"online"' | wc -l)
  [ "$online" -ge 2 ] && break
  sleep 0.2
done

cat <<MSG

Ferry is running (logs in $DATA/logs):
  hub            $HUB            (metrics: $HUB/metrics)
  hub console    $HUB/console/
  Dev console    http://127.0.0.1:8090/console/
  Prod console   http://127.0.0.1:8091/console/
  APIM Dev       http://127.0.0.1:8083/management/v2
  APIM Prod      http://127.0.0.1:8084/management/v2
  admin token    $TOKEN
  console login  organization demo, user admin, password $PASSWORD

  installations: curl -H 'Authorization: Bearer $TOKEN' $HUB/api/v1/orgs/demo/installations
  a session for the agents' REST APIs:
    curl -H 'Content-Type: application/json' -d '{"org":"demo","username":"admin","password":"$PASSWORD"}' $HUB/api/v1/auth/session

Press Ctrl-C to stop.
MSG
wait -n "${pids[@]}" || true
echo "a Ferry process exited; see $DATA/logs/" >&2
