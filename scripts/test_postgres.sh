#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests, on 127.0.0.1 only.
#
#   scripts/test_postgres.sh          ensure it runs; print its SQLAlchemy URL
#   scripts/test_postgres.sh stop     stop it
#   scripts/test_postgres.sh destroy  stop it and delete its data directory
#
# Usage from a shell:  export TEST_POSTGRES_URL=$(scripts/test_postgres.sh)
#
# Settings (environment): TEST_POSTGRES_PORT (55432), TEST_POSTGRES_DIR
# (/tmp/escalation-test-pg), TEST_POSTGRES_DB (escalation_test), PG_BINDIR
# (default: the newest /usr/lib/postgresql/*/bin, else initdb on PATH).
#
# Logins are trusted (no password) and only loopback is listened on. Durability
# is switched off (fsync=off): this server is for tests only. As root the server
# runs as the `postgres` OS user, because initdb refuses to run as root.
#
# Exit codes: 0 ok, 3 no PostgreSQL server binaries here, 1 anything else.
# Only the URL goes to stdout; progress goes to stderr.
set -euo pipefail

PORT="${TEST_POSTGRES_PORT:-55432}"
DATA="${TEST_POSTGRES_DIR:-/tmp/escalation-test-pg}"
DB="${TEST_POSTGRES_DB:-escalation_test}"
SUPERUSER=postgres

log() { echo "test_postgres: $*" >&2; }

find_bindir() {
    if [[ -n "${PG_BINDIR:-}" ]]; then
        echo "$PG_BINDIR"
        return
    fi
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [[ -n "$dir" && -x "$dir/initdb" ]]; then
        echo "$dir"
        return
    fi
    if command -v initdb >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
    fi
}

BINDIR="$(find_bindir)"
if [[ -z "$BINDIR" || ! -x "$BINDIR/initdb" || ! -x "$BINDIR/pg_ctl" ]]; then
    log "no PostgreSQL server binaries found (install the 'postgresql' package)"
    exit 3
fi

# Run a server-side command as the owner of the data directory.
if [[ "$(id -u)" == 0 ]]; then
    if ! id -u postgres >/dev/null 2>&1; then
        log "running as root but there is no 'postgres' OS user to own the server"
        exit 1
    fi
    as_owner() { (cd /tmp && runuser -u postgres -- "$@"); }
else
    as_owner() { "$@"; }
fi

pg_ctl_() { as_owner "$BINDIR/pg_ctl" -D "$DATA" "$@"; }

is_ready() { "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$PORT" -t 2 >/dev/null 2>&1; }

psql_() {
    "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U "$SUPERUSER" "$@"
}

case "${1:-start}" in
    stop | destroy)
        if [[ -f "$DATA/PG_VERSION" ]]; then
            pg_ctl_ status >/dev/null 2>&1 && pg_ctl_ stop -m fast -w -t 30 >&2 || true
        fi
        if [[ "${1}" == destroy ]]; then
            rm -rf "$DATA"
            log "removed $DATA"
        fi
        exit 0
        ;;
    start) ;;
    *)
        echo "usage: $0 [start|stop|destroy]" >&2
        exit 1
        ;;
esac

if ! is_ready; then
    if [[ ! -f "$DATA/PG_VERSION" ]]; then
        log "initialising $DATA"
        rm -rf "$DATA"
        mkdir -p "$DATA"
        chmod 700 "$DATA"
        [[ "$(id -u)" == 0 ]] && chown postgres:postgres "$DATA"
        as_owner "$BINDIR/initdb" -D "$DATA" -U "$SUPERUSER" --auth=trust \
            --encoding=UTF8 --locale=C.UTF-8 >"$DATA.initdb.log" 2>&1 || {
            cat "$DATA.initdb.log" >&2
            exit 1
        }
    fi
    # A server that died without cleaning up leaves a stale pid file behind.
    if [[ -f "$DATA/postmaster.pid" ]] && ! pg_ctl_ status >/dev/null 2>&1; then
        rm -f "$DATA/postmaster.pid"
    fi
    log "starting PostgreSQL ($BINDIR) on 127.0.0.1:$PORT"
    opts="-c listen_addresses=127.0.0.1 -p $PORT -k $DATA"
    opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    opts+=" -c max_connections=200"
    if ! pg_ctl_ -l "$DATA/server.log" -o "$opts" -w -t 60 start >&2; then
        log "PostgreSQL did not start; last lines of $DATA/server.log:"
        tail -n 30 "$DATA/server.log" >&2 || true
        exit 1
    fi
    for _ in $(seq 1 50); do
        is_ready && break
        sleep 0.2
    done
    is_ready || {
        log "PostgreSQL is not accepting connections on 127.0.0.1:$PORT"
        exit 1
    }
fi

if [[ "$(psql_ -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != 1 ]]; then
    log "creating database $DB"
    psql_ -d postgres -c "CREATE DATABASE \"$DB\"" >/dev/null
fi

echo "postgresql+psycopg2://$SUPERUSER@127.0.0.1:$PORT/$DB"
