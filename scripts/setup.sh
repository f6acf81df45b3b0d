#!/usr/bin/env bash
# Installs what the project needs to run, and skips every step already done:
#   .venv (python3 -m venv) + requirements.txt + `pip install -e .`
#     (re-run when requirements.txt, pyproject.toml or the set of addons
#     change: the modules' entry points are fixed at install time);
#   web/node_modules (npm install) + sao's own runtime deps (sao's index.html
#     loads jquery & co from tryton-sao/node_modules);
#   with --chromium: Debian's chromium for the browser tests (never
#     `playwright install`: no browser download from outside Debian);
#   with --telephony: Kamailio, baresip, espeak-ng and sox from Debian for
#     the call center's real-SIP tests (scripts/telephony.sh).
# Stamps (hashes of the inputs) live in var/stamps/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

WITH_CHROMIUM=0
WITH_TELEPHONY=0
for arg in "$@"; do
    case "$arg" in
        --chromium) WITH_CHROMIUM=1 ;;
        --telephony) WITH_TELEPHONY=1 ;;
        *) echo "usage: $0 [--chromium] [--telephony]" >&2; exit 2 ;;
    esac
done

STAMPS="$CRM_VAR/stamps"
mkdir -p "$STAMPS" "$TRYTOND_DATABASE__PATH"

log() { echo "[setup] $*"; }

# Hash of a list of files (missing ones count as empty) plus extra strings.
inputs_hash() {
    { for f in "$@"; do echo "== $f"; cat "$f" 2>/dev/null || true; done; } \
        | sha256sum | cut -d' ' -f1
}

# --- Python ---------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    "$CRM_PYTHON" -m venv "$VENV"
    rm -f "$STAMPS/pip"
fi
# The module list is part of the key: a new addon needs `pip install -e .`.
pip_hash=$(inputs_hash "$ROOT/requirements.txt" "$ROOT/pyproject.toml" \
    <(crm_modules) <("$VENV/bin/python" --version))
if [ "$(cat "$STAMPS/pip" 2>/dev/null)" != "$pip_hash" ]; then
    log "pip install -r requirements.txt && pip install -e ."
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r "$ROOT/requirements.txt"
    # A stale egg-info beside the sources would shadow the new entry points.
    rm -rf "$ROOT"/addons/*.egg-info "$ROOT"/*.egg-info
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        --no-deps -e "$ROOT"
    echo "$pip_hash" > "$STAMPS/pip"
else
    log "python packages up to date"
fi

# --- Web client -----------------------------------------------------------
SAO="$ROOT/web/node_modules/tryton-sao"
npm_hash=$(inputs_hash "$ROOT/web/package.json" "$ROOT/web/package-lock.json")
if [ "$(cat "$STAMPS/npm" 2>/dev/null)" != "$npm_hash" ] \
        || [ ! -f "$SAO/index.html" ] || [ ! -d "$SAO/node_modules/jquery" ]; then
    command -v npm >/dev/null || {
        echo "npm is missing: apt-get install nodejs npm (node >= 18)" >&2
        exit 1; }
    log "npm install (web/ and web/node_modules/tryton-sao)"
    (cd "$ROOT/web" && npm install --no-audit --no-fund --loglevel=error)
    (cd "$SAO" && npm install --omit=dev --legacy-peer-deps --no-audit \
        --no-fund --loglevel=error)
    echo "$npm_hash" > "$STAMPS/npm"
else
    log "npm packages up to date"
fi

# --- Chromium for the browser tests ----------------------------------------
if [ "$WITH_CHROMIUM" = 1 ] && [ ! -x /usr/bin/chromium ]; then
    log "apt-get install chromium"
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq chromium >/dev/null
    [ -x /usr/bin/chromium ] || { echo "chromium install failed" >&2; exit 1; }
fi

# --- Telephony for the call center's SIP tests ------------------------------
if [ "$WITH_TELEPHONY" = 1 ]; then
    "$ROOT/scripts/telephony.sh"
fi
log "done"
