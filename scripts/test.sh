#!/usr/bin/env bash
# Runs every test of Shepherd on a fresh machine: installs what the tests need (Redis, PostgreSQL), starts private
# servers on loopback in a temporary folder, builds, runs the whole suite, and stops the servers again.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v dotnet >/dev/null 2>&1; then
  echo "error: the .NET 10 SDK is required (https://dot.net); 'dotnet' is not on PATH." >&2
  exit 1
fi

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

find_pg_bin() {
  local tool="$1"
  if command -v "$tool" >/dev/null 2>&1; then command -v "$tool"; return; fi
  ls /usr/lib/postgresql/*/bin/"$tool" 2>/dev/null | sort -V | tail -n 1
}

# --- Install what is missing -------------------------------------------------------------------------------
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ -n "$(find_pg_bin initdb)" ] || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing ${missing[*]} …"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- Start private servers on loopback ---------------------------------------------------------------------
work=$(mktemp -d /tmp/shepherd-test.XXXXXX)
chmod 755 "$work"
cleanup() {
  [ -n "${PG_CTL:-}" ] && [ -d "$work/pg" ] && $PG_AS "$PG_CTL" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  [ -f "$work/redis.pid" ] && kill "$(cat "$work/redis.pid")" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
  --daemonize yes --pidfile "$work/redis.pid" --logfile "$work/redis.log"
for _ in $(seq 1 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
export SHEPHERD_TEST_REDIS="127.0.0.1:$redis_port"

INITDB=$(find_pg_bin initdb); PG_CTL=$(find_pg_bin pg_ctl)
PG_AS=""
if [ "$(id -u)" -eq 0 ]; then
  # PostgreSQL refuses to run as root: run it as the postgres user (created by the package).
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  PG_AS="runuser -u postgres --"
fi
mkdir -p "$work/pg" && { [ -z "$PG_AS" ] || chown postgres "$work/pg"; }
pg_port=$(free_port)
$PG_AS "$INITDB" -D "$work/pg" -U postgres --auth=trust -E UTF8 >/dev/null
$PG_AS "$PG_CTL" -D "$work/pg" -l "$work/pg/log" -w -o "-p $pg_port -k $work/pg -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null
export SHEPHERD_TEST_POSTGRES="Host=127.0.0.1;Port=$pg_port;Username=postgres;Database=postgres"

# --- Build and test ---------------------------------------------------------------------------------------
dotnet build Shepherd.slnx -c Release -warnaserror --nologo -v quiet
dotnet test Shepherd.slnx -c Release --no-build --nologo "$@"
