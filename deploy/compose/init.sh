#!/bin/sh
# Bootstraps the demo stack in docker-compose.yml: creates organization
# $FERRY_ORG, one environment per name in $FERRY_ENVS, and one link token per
# environment, written to $TOKEN_DIR/<environment, lower case>.token for the
# agents (FERRY_LINK_TOKEN_FILE).
#
# Idempotent: existing organizations and environments (409) are kept, and an
# environment whose token file already exists gets no new token, because its
# agent may already have consumed it. After `docker compose down -v` everything
# starts afresh.
#
# Runs in curlimages/curl (busybox sh, no jq).
set -eu

: "${FERRY_HUB:?FERRY_HUB must be set, e.g. http://hub:8080}"
: "${FERRY_ADMIN_TOKEN:?FERRY_ADMIN_TOKEN must be set}"
ORG=${FERRY_ORG:-demo}
ENVS=${FERRY_ENVS:-Dev Prod}
TOKEN_DIR=${TOKEN_DIR:-/tokens}
TOKEN_OWNER=${TOKEN_OWNER:-10001:10001}

body=$(mktemp)
trap 'rm -f "$body"' EXIT

# api METHOD PATH JSON: prints the HTTP status; the response body is in $body.
api() {
	curl -sS --retry 10 --retry-connrefused --retry-delay 2 \
		-o "$body" -w '%{http_code}' -X "$1" \
		-H "Authorization: Bearer ${FERRY_ADMIN_TOKEN}" \
		-H 'Content-Type: application/json' \
		--data "$3" "${FERRY_HUB%/}/api/v1$2"
}

# ensure PATH NAME WHAT: creates NAME under PATH unless it already exists.
ensure() {
	status=$(api POST "$1" "{\"name\":\"$2\"}")
	case $status in
	201) echo "init: created $3 $2" ;;
	409) echo "init: $3 $2 already exists" ;;
	*)
		echo "init: creating $3 $2: HTTP $status: $(cat "$body")" >&2
		exit 1
		;;
	esac
}

ensure /orgs "$ORG" organization

mkdir -p "$TOKEN_DIR"
for env in $ENVS; do
	ensure "/orgs/$ORG/environments" "$env" environment

	file="$TOKEN_DIR/$(echo "$env" | tr '[:upper:]' '[:lower:]').token"
	if [ -s "$file" ]; then
		echo "init: $file exists; keeping it"
		continue
	fi

	status=$(api POST "/orgs/$ORG/environments/$env/link-tokens" '{}')
	if [ "$status" != 201 ]; then
		echo "init: creating link token for $env: HTTP $status: $(cat "$body")" >&2
		exit 1
	fi
	token=$(tr -d '\n' <"$body" | sed -n 's/.*"token"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p')
	if [ -z "$token" ]; then
		echo "init: no token in the reply for $env" >&2
		exit 1
	fi

	# Write atomically, readable only by the agents' user.
	tmp="$file.tmp"
	(umask 077 && printf '%s' "$token" >"$tmp")
	chown "$TOKEN_OWNER" "$tmp"
	mv "$tmp" "$file"
	echo "init: wrote link token for $env to $file"
done
