#!/usr/bin/env bash
# `make docker-smoke`: build the image, bring the whole compose stack up, finish one SMS
# verification through it, check the database roles, and tear everything down again.
# Exits non-zero on any failure. Not part of `make test`: it needs a Docker engine.
#
# Where the engine cannot pull python:3.11-slim or postgres:15, it builds local
# stand-ins tagged with those names (docker/standins.sh) and says so. Where the image
# build cannot reach a package index, it builds the wheels on this machine first and
# installs only those in the image (WHEELS_ONLY=1). docs/containers.md tells why.
#
# Environment:
#   SMOKE_KEEP=1        leave the stack running afterwards (project smsreg-smoke)
#   SMOKE_WHEELS=host|index   skip the probe: build wheels here, or let the build use an index
#   SMSREG_IMAGE        the tag to build (default smsreg:smoke)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
project=smsreg-smoke
image=${SMSREG_IMAGE:-smsreg:smoke}
phone_national=090-1234-5678   # a fictional number, the one the API's examples use
phone_e164=+819012345678
workdir=$(mktemp -d)
chmod 700 "$workdir"
stack_up=0

say() { printf '\n==> %s\n' "$*"; }
loud() { printf '\n!!! %s\n' "$*"; }
fail() { loud "SMOKE FAILED: $*"; exit 1; }

# -- the Docker engine and compose ----------------------------------------------------
if ! docker info >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v dockerd >/dev/null; then
        say "no Docker engine answers: starting dockerd (log: /var/log/smsreg-dockerd.log)"
        nohup dockerd >/var/log/smsreg-dockerd.log 2>&1 &
        for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    fi
    docker info >/dev/null 2>&1 || fail "no Docker engine (install docker.io and start dockerd as root)"
fi
if docker compose version >/dev/null 2>&1; then
    compose_bin=(docker compose)
elif command -v docker-compose >/dev/null; then
    compose_bin=(docker-compose)
else
    fail "neither 'docker compose' nor 'docker-compose' is installed"
fi
compose() { "${compose_bin[@]}" -p "$project" -f docker/compose.yaml --env-file "$workdir/env" "$@"; }

cleanup() {
    status=$?
    if [ "$stack_up" = 1 ]; then
        if [ "$status" != 0 ]; then
            loud "state of the stack at the failure:"
            compose ps || true
            # Logs never hold numbers or codes (SMSREG_CONSOLE_PRINT=false); API keys are masked.
            compose logs --no-color --tail 40 2>&1 | sed -E 's/smsreg_sk_[A-Za-z0-9_-]+/smsreg_sk_<masked>/g' || true
        fi
        if [ "${SMOKE_KEEP:-0}" = 1 ]; then
            say "SMOKE_KEEP=1: the stack is left running (env file: $workdir/env)"
            exit "$status"
        fi
        say "tearing down: compose down -v"
        compose down -v --remove-orphans >/dev/null 2>&1 || true
    fi
    rm -rf "$workdir"
    exit "$status"
}
trap cleanup EXIT

# -- base images ----------------------------------------------------------------------
say "base images: python:3.11-slim and postgres:15"
"$root/docker/standins.sh"
for base in python:3.11-slim postgres:15; do
    label=$(docker image inspect -f '{{ index .Config.Labels "org.smsreg.standin" }}' "$base")
    if [ -n "$label" ]; then
        loud "USING A LOCAL STAND-IN for $base: $label"
    fi
done

# -- wheels: can the image build reach a package index? --------------------------------
wheels=${SMOKE_WHEELS:-}
if [ -z "$wheels" ]; then
    say "probing whether a container can install from PyPI"
    if docker run --rm python:3.11-slim python -c \
        "import urllib.request; urllib.request.urlopen('https://pypi.org/simple/pip/', timeout=10)" \
        >/dev/null 2>&1; then
        wheels=index
    else
        wheels=host
        loud "a container cannot install from PyPI here (no route, or TLS the image does not trust):"
        loud "building the wheels on this machine and installing only those in the image"
    fi
fi
build_args=()
if [ "$wheels" = host ]; then
    make --no-print-directory docker-wheels
    build_args=(--build-arg WHEELS_ONLY=1)
fi

# -- the image ------------------------------------------------------------------------
say "docker build -t $image (no pull: base images are the local ones)"
docker build --pull=false "${build_args[@]}" -f docker/Dockerfile -t "$image" . \
    >"$workdir/build.log" 2>&1 || { tail -30 "$workdir/build.log"; fail "docker build"; }
grep -E '^Sending build context' "$workdir/build.log" || true
[ "$(docker image inspect -f '{{.Config.User}}' "$image")" = "10001:10001" ] \
    || fail "the image does not run as uid 10001"

# -- an env file for the console sender, with fresh keys and passwords ---------------
say "writing a console-sender env file with fresh keys (never printed)"
secret() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
{
    # Block (b) of env.example: development mode only for the console sender.
    echo "SMSREG_ENVIRONMENT=development"
    echo "SMSREG_SMS_SENDER=console"
    echo "SMSREG_CONSOLE_PRINT=false"
    echo "SMSREG_WEBOTP_DOMAIN=localhost"
    for family in PHONE INDEX CODE TOKEN LEDGER_SIGNING; do
        echo "SMSREG_${family}_KEYS=$(docker run --rm "$image" smsreg keys new --key-id k1)"
    done
    echo "POSTGRES_PASSWORD=$(secret)"
    echo "DB_OWNER_PASSWORD=$(secret)"
    echo "DB_APP_PASSWORD=$(secret)"
    echo "SMSREG_IMAGE=$image"
    echo "SMSREG_PORT=8080"     # not the image's 8000: the health check must follow it
    echo "SMSREG_PUBLISH=127.0.0.1:$port"
    echo "SCHEDULE_HOURLY_SECONDS=3600"
} >"$workdir/env"
chmod 600 "$workdir/env"

# -- the stack ------------------------------------------------------------------------
say "compose up -d (project $project, service published on 127.0.0.1:$port)"
compose down -v --remove-orphans >/dev/null 2>&1 || true
stack_up=1
compose up -d --no-build

say "waiting for the service to report healthy"
healthy=0
for _ in $(seq 90); do
    cid=$(compose ps -q smsreg)
    if [ -n "$cid" ]; then
        state=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$cid")
        [ "$state" = healthy ] && { healthy=1; break; }
    fi
    sleep 2
done
[ "$healthy" = 1 ] || fail "the service did not become healthy"
for job in migrate db-grants; do
    code=$(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$(compose ps -q "$job")")
    [ "$code" = "exited 0" ] || fail "the $job job ended '$code'"
    echo "$job job: exited 0"
done
for svc in worker scheduler; do
    state=$(docker inspect -f '{{.State.Status}}' "$(compose ps -q "$svc")")
    [ "$state" = running ] || fail "$svc is $state"
    echo "$svc: running"
done
echo "smsreg: healthy (health check on SMSREG_PORT=8080)"

# -- the database roles ---------------------------------------------------------------
say "checking the roles: the service's role may append to the ledger, never change it"
rights=$(compose exec -T postgres psql -U postgres -d smsreg -tA --no-psqlrc -c "
    SELECT string_agg(t || ':' || p || '=' || has_table_privilege('smsreg_app', t, p)::text, ' '
                      ORDER BY t, p)
    FROM unnest(ARRAY['ledger_entries', 'ledger_entry_subjects', 'ledger_checkpoints']) AS t,
         unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) AS p")
echo "$rights" | tr ' ' '\n' | sed 's/^/  /'
for table in ledger_entries ledger_entry_subjects ledger_checkpoints; do
    for p in SELECT INSERT; do
        grep -q "$table:$p=true" <<<"$rights" || fail "smsreg_app lacks $p on $table"
    done
    for p in UPDATE DELETE TRUNCATE; do
        grep -q "$table:$p=false" <<<"$rights" || fail "smsreg_app holds $p on $table"
    done
done
owned=$(compose exec -T postgres psql -U postgres -d smsreg -tA --no-psqlrc -c "
    SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
    WHERE r.rolname = 'smsreg_app'")
[ "$owned" = 0 ] || fail "smsreg_app owns $owned relations"
app_role=$(compose exec -T postgres psql -U postgres -d smsreg -tA --no-psqlrc -c "
    SELECT rolsuper OR rolcreatedb OR rolcreaterole FROM pg_roles WHERE rolname = 'smsreg_app'")
[ "$app_role" = f ] || fail "smsreg_app has superuser, createdb or createrole"
echo "smsreg_app owns nothing, is no superuser, and holds no UPDATE/DELETE/TRUNCATE on the ledger"

# -- one verification, end to end ------------------------------------------------------
say "creating an API key with the CLI in a container (shown once, kept in a variable)"
key=$(compose exec -T smsreg smsreg api-keys create --name smoke --scope verifications:write \
    | tail -n 1)
[[ "$key" == smsreg_sk_* ]] || fail "api-keys create printed no key"

base="http://127.0.0.1:$port"
say "POST /v1/verifications (a fictional number)"
status=$(curl -sS -o "$workdir/start.json" -w '%{http_code}' -X POST "$base/v1/verifications" \
    -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    -d "{\"phone\": \"$phone_national\", \"purpose\": \"coupon_usage\", \"locale\": \"ja\"}")
[ "$status" = 201 ] || fail "start answered $status"
vid=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["id"])' "$workdir/start.json")
echo "201: verification $vid is pending"

say "reading the code from the console outbox on the worker's volume"
code=""
for _ in $(seq 30); do
    code=$(compose exec -T worker python -c '
import json, re, sys
try:
    lines = open("/var/lib/smsreg/outbox/console.jsonl", encoding="utf-8").read().splitlines()
except FileNotFoundError:
    sys.exit(0)
for line in reversed(lines):
    message = json.loads(line)
    if message["to"] == sys.argv[1]:
        found = re.search(r"#(\d+)\s*$", message["body"]) or re.search(r"\d{4,10}", message["body"])
        print(found.group(found.lastindex or 0))
        break
' "$phone_e164" 2>/dev/null || true)
    [ -n "$code" ] && break
    sleep 1
done
[ -n "$code" ] || fail "the worker wrote no SMS for the verification to the console outbox"
echo "the worker sent the SMS; its code was read (not shown)"

say "POST /v1/verifications/$vid/check"
status=$(curl -sS -o "$workdir/check.json" -w '%{http_code}' -X POST "$base/v1/verifications/$vid/check" \
    -H "Authorization: Bearer $key" -H 'Content-Type: application/json' -d "{\"code\": \"$code\"}")
[ "$status" = 200 ] || fail "check answered $status: $(cat "$workdir/check.json")"
approved=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["status"])' "$workdir/check.json")
[ "$approved" = approved ] || fail "check answered status '$approved'"
echo "200: status approved"

# -- the scheduled jobs ran, as the runtime role --------------------------------------
say "the scheduler's first round (purge, credentials due, ledger checkpoint)"
done_all=0
for _ in $(seq 60); do
    logs=$(compose logs --no-color scheduler 2>&1)
    if grep -q "smsreg purge done" <<<"$logs" && grep -q "smsreg credentials due done" <<<"$logs" \
        && grep -q "smsreg ledger checkpoint done" <<<"$logs"; then
        done_all=1
        break
    fi
    grep -q FAILED <<<"$logs" && break
    sleep 2
done
grep -E '^[^|]*\| scheduler: smsreg .* (done|FAILED)' <<<"$logs" | sed 's/^[^|]*| /  /' || true
[ "$done_all" = 1 ] || fail "a scheduled job did not finish"

say "smsreg ledger verify, as smsreg_app"
compose exec -T smsreg smsreg ledger verify | sed 's/^/  /' || fail "smsreg ledger verify"

say "SMOKE PASSED: image built, stack up, verification approved, roles as designed"
