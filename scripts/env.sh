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
