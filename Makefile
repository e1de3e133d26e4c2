# The two commands a newcomer needs:  make demo  (start the product)  and  make test  (run every test).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PG_URL ?= postgres://postgres@127.0.0.1:5432/practice
STAMP := $(VENV)/.installed

.PHONY: demo test install lint typecheck test-sqlite test-postgres test-sandbox-wheel browser-deps clean messages soak

$(STAMP): requirements.txt pyproject.toml sandbox-dist/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q --no-deps -e .
	$(BIN)/pip install -q -r requirements.txt
	touch $(STAMP)

install: $(STAMP)

## make demo: install, migrate, seed the demo firm and run app + worker + local QBO sandbox (Ctrl-C stops all)
demo: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput -v 0
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py run_stack

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy practice config qbo_sandbox manage.py

# tests/sandbox needs no database: test-sandbox-wheel runs it once, against the built wheel.
test-sqlite: install
	$(BIN)/python -m pytest -q --ignore=tests/sandbox

# PostgreSQL at 127.0.0.1:5432 (trust auth). Skipped, with a message, only when no server answers.
test-postgres: install
	@if $(BIN)/python -c "import psycopg,sys; psycopg.connect('$(PG_URL)'.replace('/practice','/postgres'), connect_timeout=3).close()" 2>/dev/null; then \
	  DATABASE_URL=$(PG_URL) $(BIN)/python -m pytest -q --ignore=tests/sandbox; \
	else \
	  echo "SKIPPED PostgreSQL run: no PostgreSQL server answered at 127.0.0.1:5432"; \
	fi

# The sandbox as a package of its own (sandbox-dist/): build the qbo-sandbox wheel, install it alone
# in a fresh venv and run tests/sandbox against it (not against the source tree). About a minute.
test-sandbox-wheel:
	PYTHON=$(PYTHON) sandbox-dist/test-wheel.sh

## make test: lint, type-check, the sandbox's tests against its wheel, then the app's suite on SQLite and on PostgreSQL
test: lint typecheck test-sandbox-wheel test-sqlite test-postgres

## make soak: a 2,000-account, 2,000-invoice backfill by a real worker SIGKILLed 20 times under the
## sandbox's fault matrix, then every record checked in QBO (bench/soak.py; about 10-15 minutes).
## Exit 0 only when every check holds. Options: make soak SOAK_ARGS="--database-url postgres://..."
soak: install
	$(BIN)/python bench/soak.py $(SOAK_ARGS)

messages: install
	cd practice && ../$(BIN)/python ../manage.py makemessages -l es --no-obsolete && ../$(BIN)/python ../manage.py compilemessages

clean:
	rm -rf $(VENV) db.sqlite3* staticfiles .mypy_cache .ruff_cache
