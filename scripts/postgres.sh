#!/usr/bin/env bash
# PostgreSQL helper for the demo and the tests.
#   postgres.sh start                 make sure the local server answers
#                                     (starts a stopped Debian cluster)
#   postgres.sh createdb URI NAME     create database NAME when missing
#   postgres.sh dropdb URI NAME...    drop databases (if they exist)
#   postgres.sh drop-templates URI    drop the test cache templates (test-<hash>)
# URI is a trytond database URI such as postgresql://postgres@127.0.0.1:5432/
# No silent skip: when PostgreSQL is not installed, it says how to get it
# and fails.
set -euo pipefail

die() { echo "[postgres] ERROR: $*" >&2; exit 1; }

# psql URI for the maintenance database of a trytond URI.
admin_uri() {
    local uri="${1%/}"
    echo "$uri/postgres"
}

psql_q() {  # psql_q URI SQL
    PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -tA "$(admin_uri "$1")" -c "$2"
}

require_client() {
    command -v psql >/dev/null || die "PostgreSQL is not installed (no psql): \
run 'apt-get install postgresql' (Debian 12 ships PostgreSQL 15)."
}

cmd_start() {
    require_client
    local uri="${1:-${CRM_TEST_PG_URI:-postgresql://postgres@127.0.0.1:5432/}}"
    if psql_q "$uri" 'SELECT 1' >/dev/null 2>&1; then
        return 0
    fi
    command -v pg_ctlcluster >/dev/null || die "PostgreSQL does not answer \
at $uri and pg_ctlcluster is missing: run 'apt-get install postgresql'."
    local version
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)
    [ -n "$version" ] || die "no PostgreSQL cluster in /etc/postgresql: \
run 'apt-get install postgresql' (or pg_createcluster)."
    echo "[postgres] starting cluster $version/main"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start \
        || die "could not start PostgreSQL $version/main"
    local i
    for i in $(seq 1 30); do
        psql_q "$uri" 'SELECT 1' >/dev/null 2>&1 && return 0
        sleep 1
    done
    die "PostgreSQL $version/main started but $uri refuses connections \
(the scripts expect trust authentication for local connections)."
}

db_exists() {  # db_exists URI NAME
    [ "$(psql_q "$1" "SELECT 1 FROM pg_database WHERE datname = '$2'")" = 1 ]
}

cmd_createdb() {
    local uri="$1" name="$2"
    cmd_start "$uri"
    if ! db_exists "$uri" "$name"; then
        echo "[postgres] creating database $name"
        psql_q "$uri" "CREATE DATABASE \"$name\" ENCODING 'UTF8' TEMPLATE template0"
    fi
}

cmd_dropdb() {
    local uri="$1"; shift
    cmd_start "$uri"
    local name
    for name in "$@"; do
        psql_q "$uri" "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)"
    done
}

cmd_drop_templates() {
    local uri="$1"
    cmd_start "$uri"
    local name
    for name in $(psql_q "$uri" \
            "SELECT datname FROM pg_database WHERE datname ~ '^test-[0-9a-f]{40}$'"); do
        psql_q "$uri" "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)"
    done
}

case "${1:-}" in
    start) shift; cmd_start "$@" ;;
    createdb) shift; cmd_createdb "$@" ;;
    dropdb) shift; cmd_dropdb "$@" ;;
    drop-templates) shift; cmd_drop_templates "$@" ;;
    *) echo "usage: $0 start|createdb URI NAME|dropdb URI NAME...|drop-templates URI" >&2
       exit 2 ;;
esac
