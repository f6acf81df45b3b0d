#!/usr/bin/env bash
# `make test`: every test of every module, on SQLite and on PostgreSQL,
# then the browser tests.  Usage: test.sh [all|sqlite|postgresql|browser]...
#   all = setup (with Debian's chromium and telephony) + sqlite +
#   postgresql + browser.
# Every phase runs even when an earlier one failed (one CI run shows all
# failures); the exit status is non-zero when any phase failed.
# With `all`, the PostgreSQL phase (the longest, half of it waiting on the
# server) runs beside the SQLite and browser phases: each phase's output
# goes to var/test-reports/<phase>.log and is shown when it ends.
# CRM_TEST_PARALLEL=0 runs them one after the other.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"

PHASES=("$@")
[ "${#PHASES[@]}" -gt 0 ] || PHASES=(all)
if [ "${PHASES[*]}" = all ]; then
    PHASES=(sqlite postgresql browser)
    SETUP_ARGS=(--chromium --telephony)
else
    # The module tests place real SIP calls (crm_callcenter)
    SETUP_ARGS=(--telephony)
    for p in "${PHASES[@]}"; do
        [ "$p" = browser ] && SETUP_ARGS+=(--chromium)
    done
fi

REPORTS="$CRM_VAR/test-reports"
CACHE="$CRM_VAR/test-cache"
mkdir -p "$REPORTS"
SUMMARY=()
RCS=()
FAILED=0

# Unit tests (test_*.py) and scenarios (scenario_*.rst doctests) of every
# module folder of addons/ (the ones with a tryton.cfg).
PYTEST_ADDONS=(-ra --doctest-glob='scenario_*.rst'
    -o 'doctest_optionflags=ELLIPSIS IGNORE_EXCEPTION_DETAIL NORMALIZE_WHITESPACE')
addon_test_dirs() {
    local m
    for m in $(crm_modules); do
        if [ -d "addons/$m/tests" ]; then echo "addons/$m/tests"; fi
    done
}

run_phase() {  # run_phase NAME COMMAND...
    # The phase's exit status and time go to $REPORTS/NAME.result: a phase
    # may run in a background subshell, which cannot set our variables.
    local name="$1"; shift
    local start=$SECONDS rc
    echo
    echo "=============================== $name ==============================="
    rm -f "$REPORTS/$name.xml"
    "$@" --junitxml="$REPORTS/$name.xml"
    rc=$?
    # pytest exit 5 = no test collected: a phase that tests nothing is broken.
    local took=$((SECONDS - start))
    echo "$rc $took" > "$REPORTS/$name.result"
    echo "[test] phase $name: exit $rc in ${took}s"
}

record_phase() {  # record_phase NAME: add its result to the summary
    # NAME.result: exit status, seconds and an optional note
    local name="$1" rc took note
    if ! read -r rc took note < "$REPORTS/$name.result"; then
        rc=1 took=0 note="did not run"
    fi
    if [ "$rc" -ne 0 ]; then FAILED=1; fi
    RCS+=("$name=$rc")
    SUMMARY+=("$(printf '%-11s rc=%-3s %4ss  %s' "$name" "$rc" "$took" "$note")")
}

phase_sqlite() {
    # The cache key is only the module list: a cache kept across runs would
    # hide schema changes, so it is emptied every run.
    rm -rf "$CACHE/sqlite"; mkdir -p "$CACHE/sqlite"
    mapfile -t dirs < <(addon_test_dirs)
    run_phase sqlite env \
        TRYTOND_DATABASE_URI=sqlite:// TRYTOND_DATABASE__URI=sqlite:// \
        DB_NAME=:memory: DB_CACHE="$CACHE/sqlite" \
        pytest "${PYTEST_ADDONS[@]}" "${dirs[@]}"
}

phase_postgresql() {
    local uri="$CRM_TEST_PG_URI" db="$CRM_TEST_PG_DB" start=$SECONDS
    if ! "$ROOT/scripts/postgres.sh" start "$uri"; then
        echo "1 0 PostgreSQL unavailable" > "$REPORTS/postgresql.result"
        echo "[test] phase postgresql: PostgreSQL unavailable"
        return
    fi
    # Leftovers of an interrupted run, and the cache (emptied every run).
    # The cache is kept as template databases (DB_CACHE=postgresql://):
    # measured 133 s against 164 s with pg_dump folders on this 2-core
    # machine.  They are named by module list only, so two checkouts testing
    # on one server at the same time must set CRM_TEST_PG_CACHE=folder (and
    # their own CRM_TEST_PG_DB).
    "$ROOT/scripts/postgres.sh" dropdb "$uri" "$db"
    local cache="$CACHE/postgresql"
    rm -rf "$cache"; mkdir -p "$cache"
    if [ "${CRM_TEST_PG_CACHE:-template}" = template ]; then
        "$ROOT/scripts/postgres.sh" drop-templates "$uri"
        cache=postgresql://
    fi
    mapfile -t dirs < <(addon_test_dirs)
    # Test databases need no durable commits: about 8 % less time
    run_phase postgresql env \
        TRYTOND_DATABASE_URI="$uri" TRYTOND_DATABASE__URI="$uri" \
        DB_NAME="$db" DB_CACHE="$cache" \
        PGOPTIONS="${PGOPTIONS:-} -c synchronous_commit=off" \
        pytest "${PYTEST_ADDONS[@]}" "${dirs[@]}"
    "$ROOT/scripts/postgres.sh" dropdb "$uri" "$db"
    if [ "$cache" = postgresql:// ]; then
        "$ROOT/scripts/postgres.sh" drop-templates "$uri"
    fi
}

phase_browser() {
    mkdir -p "$ROOT/tests/artifacts"
    run_phase browser pytest -ra tests/browser
}

start_all=$SECONDS
setup_start=$SECONDS
if ! "$ROOT/scripts/setup.sh" "${SETUP_ARGS[@]}"; then
    echo "[test] setup failed" >&2
    exit 1
fi
SUMMARY+=("$(printf '%-11s rc=%-3s %4ss' setup 0 $((SECONDS - setup_start)))")

for phase in "${PHASES[@]}"; do
    case "$phase" in
        sqlite|postgresql|browser) rm -f "$REPORTS/$phase.result" ;;
        *) echo "unknown phase: $phase" >&2; exit 2 ;;
    esac
done
if [ "${#PHASES[@]}" -gt 1 ] && [ "${CRM_TEST_PARALLEL:-1}" != 0 ] \
        && [[ " ${PHASES[*]} " == *" postgresql "* ]]; then
    # PostgreSQL beside the others (2 cores: about 40 % less time)
    echo "[test] phase postgresql runs beside the others:" \
        "$REPORTS/postgresql.log"
    phase_postgresql > "$REPORTS/postgresql.log" 2>&1 &
    pg_pid=$!
    for phase in "${PHASES[@]}"; do
        [ "$phase" = postgresql ] || "phase_$phase"
    done
    wait "$pg_pid"
    cat "$REPORTS/postgresql.log"
else
    for phase in "${PHASES[@]}"; do "phase_$phase"; done
fi
for phase in "${PHASES[@]}"; do record_phase "$phase"; done

echo
echo "=============================== summary ==============================="
for line in "${SUMMARY[@]}"; do echo "  $line"; done
echo "  total       $((SECONDS - start_all))s"
# One closing line over all phases, from the JUnit reports; a phase that
# failed with no failing test in its report (crash, nothing collected,
# PostgreSQL missing) counts as one failure.
python - "$REPORTS" "${RCS[@]}" <<'PY'
import sys, os
import xml.etree.ElementTree as ET
reports, results = sys.argv[1], sys.argv[2:]
passed = failed = skipped = 0
for result in results:
    phase, rc = result.rsplit('=', 1)
    bad = 0
    try:
        root = ET.parse(os.path.join(reports, phase + '.xml')).getroot()
        suites = list(root.iter('testsuite'))
    except (OSError, ET.ParseError):
        suites = []
    # Count test cases, not the 'tests' attribute: pytest adds the
    # subtests of trytond's ModuleTestCase to it.
    for suite in suites:
        for case in suite.iter('testcase'):
            tags = {child.tag for child in case}
            if tags & {'failure', 'error'}:
                bad += 1
            elif 'skipped' in tags:
                skipped += 1
            else:
                passed += 1
    if int(rc) and not bad:
        bad = 1
    failed += bad
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
exit "$FAILED"
