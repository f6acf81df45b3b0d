# Entry points of the project.  The work is done by plain bash scripts in
# scripts/ (readable, runnable without make); each one sources scripts/env.sh
# for the machine-dependent TRYTOND_* defaults.
.PHONY: demo test setup test-sqlite test-postgresql test-browser bench help

# Create/reuse the demo database, load demo data, serve on :8000 (Ctrl-C).
demo:
	@scripts/demo.sh

# Everything CI checks: setup, SQLite, PostgreSQL, browser tests.
test:
	@scripts/test.sh all

# .venv + Python packages + npm packages; skipped when already up to date.
setup:
	@scripts/setup.sh

# One phase at a time, for quicker loops while developing.
test-sqlite:
	@scripts/test.sh sqlite

test-postgresql:
	@scripts/test.sh postgresql

test-browser:
	@scripts/test.sh browser

# Benchmarks (PostgreSQL, see bench/README.md): every bench/*.py but its
# helper library; `make bench BENCH_ARGS=--quick` for a short check run.
bench: setup
	@set -e; . scripts/env.sh; scripts/postgres.sh start; \
	for f in bench/*.py; do \
	    case "$$f" in *lib.py) continue ;; esac; \
	    echo "== $$f"; python "$$f" $(BENCH_ARGS); done

help:
	@echo "make demo | test | setup | test-sqlite | test-postgresql | test-browser | bench"
