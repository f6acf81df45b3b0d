#!/usr/bin/env bash
# `make demo`: set up, create or reuse the demo database, activate every
# module of the suite, load the demo data, then serve sao + trytond-cron
# until Ctrl-C.  CRM_DB_URI=postgresql://user@host:5432/ switches from the
# SQLite file var/db/crm_demo.sqlite to PostgreSQL.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
"$ROOT/scripts/setup.sh"

DB="$CRM_DB_NAME"
URI="$TRYTOND_DATABASE__URI"
mapfile -t MODULES < <(crm_modules)
[ "${#MODULES[@]}" -gt 0 ] || { echo "no module in addons/" >&2; exit 1; }
log() { echo "[demo] $*"; }

# trytond-admin reads the admin password from the file named by
# TRYTONPASSFILE (kept out of the command line and of git).
PASSFILE="$CRM_VAR/admin-password"
mkdir -p "$CRM_VAR"
( umask 077; printf '%s\n' "$CRM_ADMIN_PASSWORD" > "$PASSFILE" )
export TRYTONPASSFILE="$PASSFILE"

# Is DB an initialised Tryton database?  (A file or database left by an
# interrupted creation is not: it is created again.)
db_initialised() {
    python - "$DB" <<'PY'
import sys
from trytond import backend
try:
    database = backend.Database(sys.argv[1]).connect()
    ok = database.test()
    database.close()
except Exception:
    ok = False
sys.exit(0 if ok else 1)
PY
}

case "$URI" in
    sqlite:*)
        DBFILE="$TRYTOND_DATABASE__PATH/$DB.sqlite"
        mkdir -p "$TRYTOND_DATABASE__PATH"
        if [ -e "$DBFILE" ] && ! db_initialised; then
            log "removing incomplete $DBFILE"; rm -f "$DBFILE"
        fi
        NEW=0; [ -e "$DBFILE" ] || { touch "$DBFILE"; NEW=1; }
        ;;
    postgresql:*)
        "$ROOT/scripts/postgres.sh" createdb "$URI" "$DB"
        NEW=0; db_initialised || NEW=1
        ;;
    *) echo "unsupported database URI: $URI" >&2; exit 1 ;;
esac

if [ "$NEW" = 1 ]; then
    log "creating database $DB ($URI) with ${MODULES[*]}"
    trytond-admin -d "$DB" --all -u "${MODULES[@]}" --activate-dependencies \
        --email "$CRM_ADMIN_EMAIL"
else
    # Cheap when nothing changed; picks up new modules and schema changes.
    log "updating database $DB (${MODULES[*]})"
    trytond-admin -d "$DB" -u "${MODULES[@]}" --activate-dependencies
fi

log "loading demo data (scripts/demo_data.py, idempotent)"
python "${CRM_DEMO_DATA:-$ROOT/scripts/demo_data.py}" -d "$DB"

# Serve.  Each server runs in its own process group (setsid: trytond-cron
# forks workers) and the trap kills those groups on Ctrl-C/TERM/exit:
# background jobs of a script ignore SIGINT, so they are stopped explicitly.
# `wait -n` returns as soon as one of them dies.
PIDS=()
stop() {
    trap - INT TERM EXIT
    if [ "${#PIDS[@]}" -gt 0 ]; then
        log "stopping (${PIDS[*]})"
        local pid
        for pid in "${PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
        wait "${PIDS[@]}" 2>/dev/null || true
        sleep 1
        for pid in "${PIDS[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
    fi
}
trap 'stop; exit 130' INT TERM
trap stop EXIT

setsid trytond -d "$DB" &
PIDS+=($!)
setsid trytond-cron -d "$DB" &
PIDS+=($!)

URL="http://${TRYTOND_WEB__LISTEN}/"
for _ in $(seq 1 60); do
    if python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" \
            "$URL" 2>/dev/null; then
        break
    fi
    kill -0 "${PIDS[0]}" 2>/dev/null || { echo "trytond did not start" >&2; exit 1; }
    sleep 1
done

cat <<MSG

=====================================================================
 CRM demo is running: $URL   (database: $DB)
 Logins (user / password):
   manager / crm-demo-2026     sales manager, helpdesk manager
   alice   / crm-demo-2026     salesperson
   bob     / crm-demo-2026     salesperson, support agent
   carol   / crm-demo-2026     salesperson, support agent
   dora    / crm-demo-2026     support agent
   admin   / $CRM_ADMIN_PASSWORD   administrator
 Ctrl-C stops the server and the cron.
=====================================================================

MSG

# Until Ctrl-C, or until one of the two processes dies.
set +e
wait -n "${PIDS[@]}"
rc=$?
log "a server process exited ($rc)"
exit "$rc"
