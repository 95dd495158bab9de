# The README names two commands: `make demo` and `make test`. The rest are helpers.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench browser clean

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

demo: $(STAMP)
	$(PY) manage.py demo

# The browser tests (tests/e2e) drive Debian's Chromium; as root it is installed here,
# otherwise they skip and this says what to run.
CHROMIUM ?= /usr/bin/chromium

test: $(STAMP)
	@if [ ! -x "$(CHROMIUM)" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "Installing Chromium for the browser tests: apt-get install -y chromium"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else \
			echo "No Chromium at $(CHROMIUM): the browser tests will skip. To run them:"; \
			echo "    sudo apt-get update && sudo apt-get install -y chromium"; \
		fi; \
	fi
	CHROMIUM=$(CHROMIUM) $(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Benchmarks: separate from the test suite; each prints its figures.
# BENCH_DB: a scratch PostgreSQL database for the claim benchmark (skipped without one).
BENCH_DB ?= postgres://postgres@127.0.0.1:5432/bench
BENCH_VAR := $(CURDIR)/var/bench

bench: $(STAMP)
	$(PY) -m tracking.simulator_bench
	$(PY) -m tracking.bench --memory
	$(PY) -m tracking.redact --bench
	rm -rf $(BENCH_VAR) && mkdir -p $(BENCH_VAR)
	VAR_DIR=$(BENCH_VAR) DATABASE_URL= CELERY_BROKER_URL= $(PY) manage.py migrate -v0
	VAR_DIR=$(BENCH_VAR) DATABASE_URL= CELERY_BROKER_URL= $(PY) manage.py bench_pipeline
	@if psql "$(BENCH_DB)" -c "select 1" >/dev/null 2>&1 || psql "$(dir $(BENCH_DB))postgres" -c "CREATE DATABASE $(notdir $(BENCH_DB))" >/dev/null 2>&1; then \
		DATABASE_URL=$(BENCH_DB) $(PY) manage.py migrate -v0 && \
		DATABASE_URL=$(BENCH_DB) $(PY) manage.py bench_claim --reviewers 32 --claims 10000 --mode all; \
	else echo "claim benchmark skipped: no PostgreSQL at $(BENCH_DB) (set BENCH_DB)"; fi

clean:
	rm -rf var/media var/broker var/db.sqlite3* var/test-db.sqlite3* var/celerybeat-schedule* var/bench
