# Developer and CI entry points. Everything runs from the project venv.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
# Touched after a successful pip install, so `make install` is a no-op until
# a requirements file changes.
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: install run test demo bench browser sandbox redis system-packages clean backup restore

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt | $(PY)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

$(TEST_STAMP): $(STAMP) requirements-test.txt
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-test.txt
	touch $@

run: install
	$(PY) server.py

demo: install
	$(PY) server.py --demo

# Back up the embedded store's data folder while the server runs (`make backup DEST=folder`), and
# restore a backup into a data folder no server uses (`make restore BACKUP=folder`, or DEST=).
# BACKUP_ARGS: more flags, e.g. --force, --data-dir DIR (see README "Backups").
BACKUP_ARGS ?=
backup: install
	@test -n "$(DEST)" || { echo "usage: make backup DEST=folder [BACKUP_ARGS=...]" >&2; exit 2; }
	$(PY) server.py backup "$(DEST)" $(BACKUP_ARGS)

restore: install
	@test -n "$(or $(BACKUP),$(DEST))" || \
		{ echo "usage: make restore BACKUP=folder [BACKUP_ARGS=...]" >&2; exit 2; }
	$(PY) server.py restore "$(or $(BACKUP),$(DEST))" $(BACKUP_ARGS)

# Every benchmark and one report (about 20 min on 2 CPUs; BENCH_ARGS=--quick: 2-3 min).
BENCH_ARGS ?=
bench: $(TEST_STAMP) redis
	$(PY) -m bench $(BENCH_ARGS)

# The system packages' apt-get installs (bubblewrap, chromium) and pip's run side by side (each
# takes minutes on a fresh machine).
# The suite runs in two phases: every test not marked `alone` on TEST_WORKERS pytest-xdist
# workers, then the `alone` ones (timing-sensitive: several server processes, store kills, lag
# bounds) one at a time. Both phases always run; the target fails if either did.
# PYTEST_ARGS: more pytest arguments for both phases.
TEST_WORKERS ?= 3
PYTEST_ARGS ?=
test:
	$(MAKE) -j2 system-packages $(TEST_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	@status=0; \
	$(PY) -m pytest -q -n $(TEST_WORKERS) -m "not alone" --durations=30 $(PYTEST_ARGS) || status=$$?; \
	$(PY) -m pytest -q -m alone --durations=10 $(PYTEST_ARGS) || status=$$?; \
	exit $$status

# The UI tests drive Debian's chromium. Installing it needs root and apt;
# without them we only warn, and the tests that need a browser decide.
browser:
	@if [ -x /usr/bin/chromium ]; then \
		:; \
	elif [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
		echo "warning: /usr/bin/chromium is missing and cannot be installed here (needs root and apt-get)" >&2; \
	else \
		echo "installing chromium with apt-get"; \
		export DEBIAN_FRONTEND=noninteractive; \
		{ apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
			|| echo "warning: apt-get could not install chromium" >&2; \
	fi

# The job sandbox (engine/sandbox.py) runs jobs under Debian's bubblewrap; without it jobs run
# unsandboxed (with a warning) and the sandbox tests skip. Same rules as `browser`.
sandbox:
	@if [ -x /usr/bin/bwrap ]; then \
		:; \
	elif [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
		echo "warning: /usr/bin/bwrap is missing and cannot be installed here (needs root and apt-get)" >&2; \
	else \
		echo "installing bubblewrap with apt-get"; \
		export DEBIAN_FRONTEND=noninteractive; \
		{ apt-get install -y -qq bubblewrap >/dev/null 2>&1 || \
			{ apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null; }; } \
			|| echo "warning: apt-get could not install bubblewrap" >&2; \
	fi

# The engine benchmark's peers (Celery, RQ) run on Debian's redis-server, which the benchmark
# starts and stops itself. Same rules as `browser`.
redis:
	@if [ -x /usr/bin/redis-server ]; then \
		:; \
	elif [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
		echo "warning: /usr/bin/redis-server is missing and cannot be installed here (needs root and apt-get)" >&2; \
	else \
		echo "installing redis-server with apt-get"; \
		export DEBIAN_FRONTEND=noninteractive; \
		{ apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; } \
			|| echo "warning: apt-get could not install redis-server" >&2; \
	fi

# apt-get installs one package set at a time (dpkg's lock): the system packages go in turn.
system-packages:
	@$(MAKE) --no-print-directory sandbox
	@$(MAKE) --no-print-directory browser

# Removes what the Makefile and the tests generate; never data/ or
# bench/results/.
clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache test-artifacts
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
