#!/usr/bin/env bash
# Installs the Debian packages of the telephony test rig
# (addons/crm_callcenter/tests/rig), only those missing:
#   kamailio + kamailio-utils-modules (http_client)
#            + kamailio-extra-modules (jansson)
#            + kamailio-tls-modules   (crypto: HMAC-SHA256 of the webhooks)
#   baresip-core (ctrl_tcp, aufile, sndfile), espeak-ng, sox,
#   sip-tester (SIPp, for load checks by hand).
# `apt-get update` runs only when something is to be installed.
# Exits non-zero with a message when a package cannot be installed.
set -euo pipefail

PACKAGES=(kamailio kamailio-utils-modules kamailio-extra-modules
    kamailio-tls-modules baresip-core espeak-ng sox sip-tester)

log() { echo "[telephony] $*"; }
die() { echo "[telephony] ERROR: $*" >&2; exit 1; }

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

command -v dpkg-query >/dev/null && command -v apt-get >/dev/null \
    || die "dpkg/apt-get not found: the telephony rig needs Debian (12) packages"

MISSING=()
for p in "${PACKAGES[@]}"; do
    installed "$p" || MISSING+=("$p")
done
if [ "${#MISSING[@]}" -eq 0 ]; then
    log "packages up to date"
    exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || die "not root and no sudo: install ${MISSING[*]}"
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
log "apt-get install ${MISSING[*]}"
$SUDO apt-get update -qq || die "apt-get update failed"
if ! $SUDO apt-get install -y -qq "${MISSING[@]}" \
        >/tmp/telephony-apt.log 2>&1; then
    tail -n 20 /tmp/telephony-apt.log >&2
    die "apt-get install ${MISSING[*]} failed (log: /tmp/telephony-apt.log)"
fi
for p in "${MISSING[@]}"; do
    installed "$p" || die "$p is still not installed"
done
for b in kamailio baresip espeak-ng sox; do
    command -v "$b" >/dev/null || [ -x "/usr/sbin/$b" ] || die "$b not found after install"
done
log "done"
