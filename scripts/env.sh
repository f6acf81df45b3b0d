# Sourced by the project's scripts: local defaults for every setting that
# a deployment overrides with its own environment variables.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT
export VENV="${VENV:-$ROOT/.venv}"
export PATH="$VENV/bin:$PATH"
export TRYTOND_CONFIG="${TRYTOND_CONFIG:-$ROOT/trytond.conf}"
# CRM_DB_URI=postgresql://... switches from the embedded SQLite to PostgreSQL
export TRYTOND_DATABASE__URI="${CRM_DB_URI:-${TRYTOND_DATABASE__URI:-sqlite://}}"
export TRYTOND_DATABASE__PATH="${TRYTOND_DATABASE__PATH:-$ROOT/var/db}"
export TRYTOND_WEB__ROOT="${TRYTOND_WEB__ROOT:-$ROOT/web/node_modules/tryton-sao}"
export TRYTOND_WEB__LISTEN="${TRYTOND_WEB__LISTEN:-127.0.0.1:8000}"
export TRYTOND_CRM__WEB_ROOT="${TRYTOND_CRM__WEB_ROOT:-$ROOT/web}"
export CRM_DB_NAME="${CRM_DB_NAME:-crm_demo}"
# Where the scripts keep their state (stamps, caches, logs): never committed.
export CRM_VAR="${CRM_VAR:-$ROOT/var}"
# Interpreter used to create .venv (pyenv's python3 on the dev machines).
export CRM_PYTHON="${CRM_PYTHON:-python3}"
# Demo database: admin password (read by trytond-admin via TRYTONPASSFILE).
export CRM_ADMIN_PASSWORD="${CRM_ADMIN_PASSWORD:-admin-demo-2026}"
export CRM_ADMIN_EMAIL="${CRM_ADMIN_EMAIL:-admin@example.com}"
# PostgreSQL used by the test suite (trust auth on the local server).
export CRM_TEST_PG_URI="${CRM_TEST_PG_URI:-postgresql://postgres@127.0.0.1:5432/}"
export CRM_TEST_PG_DB="${CRM_TEST_PG_DB:-test_crm}"
# Every module of the suite: each folder of addons/ holding a tryton.cfg.
crm_modules() {
    local cfg
    for cfg in "$ROOT"/addons/*/tryton.cfg; do
        if [ -e "$cfg" ]; then basename "$(dirname "$cfg")"; fi
    done
}
