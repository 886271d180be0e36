# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-requirements
HOST ?= 127.0.0.1:8000

.PHONY: run test env lint bench clean

$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=python3.11).")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $(STAMP)

env: $(STAMP)

# Serve the admin and API with demo data on http://$(HOST) (SQLite, tasks run eagerly,
# unless DATABASE_URL / REDIS_URL say otherwise). Another address: make run HOST=0.0.0.0:8080
run: $(STAMP)
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(PY) manage.py migrate --noinput
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(PY) manage.py seed_demo --url http://$(HOST)
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(PY) manage.py runserver $(HOST)

# The whole suite. Tests needing PostgreSQL, Redis or a browser are skipped (with the
# reason) when those are not configured; HITL_REQUIRE_SERVICES=1 makes that a failure.
# In parallel (pytest-xdist), one worker per CPU, each with its own test database and
# Redis database; TEST_WORKERS=4 sets the count, TEST_WORKERS=0 runs in one process.
# loadgroup hands out tests one at a time (a file's tests spread over the workers, which
# evens out the slow ones), except that tests marked xdist_group(name) share one worker.
TEST_WORKERS ?= auto
test: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache
	DJANGO_DEBUG=1 $(PY) manage.py makemigrations --check --dry-run
	DJANGO_DEBUG=1 $(PY) manage.py spectacular --validate --fail-on-warn --file /dev/null

# Benchmarks print one table of figures; they need PostgreSQL (the local one unless
# DATABASE_URL says otherwise). BENCH_SCALE=small measures at 10k/100k instead of 10k/1M.
BENCH_SCALE ?= full
bench: $(STAMP)
	BENCH_SCALE=$(BENCH_SCALE) DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres} \
		$(PY) -m pytest tests/benchmarks -s -p no:cacheprovider $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) db.sqlite3 db.sqlite3-* staticfiles
