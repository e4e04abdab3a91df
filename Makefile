# CRM Cockpit — the two commands a new user needs: `make demo` and `make test`.
# Both create .venv and install the pinned packages first (skipped when already up to date).

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SIZE ?= medium
SEED ?= 42
PORT ?= 8501
# pytest-xdist workers for `make test` (make test WORKERS=2 for two). The suite mostly waits on JVMs, servers,
# subprocesses and the browser: with two workers CI took 37 min (pytest 33) and used 1.5 of the 2 cores (3,337 CPU-s in
# 2,204 s, session 23). A third worker overlaps those waits at the cost of memory: both Spark groups and the browser
# group at once.
WORKERS ?= 3

.PHONY: install demo serve refresh status test lint typecheck browser databases spark pytest benchmark benchmark-extract constraints clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the pins change.
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install ## generate demo sources, refresh them through the quality gate, serve on 127.0.0.1:$(PORT)
	$(BIN)/cockpit demo --size $(SIZE) --seed $(SEED) --port $(PORT)

serve: install
	$(BIN)/cockpit serve --port $(PORT)

refresh: install
	$(BIN)/cockpit refresh

status: install
	$(BIN)/cockpit status

lint: install ## ruff, and the layers and no-cycle contracts of pyproject.toml ([tool.importlinter])
	$(BIN)/ruff check dashboard tests benchmarks
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadgroup -m 'not load' --durations=30 --junitxml=test-artifacts/junit.xml
	$(BIN)/python -m pytest -m load

# The browser tests (tests/browser) drive Debian's chromium-headless-shell (Chromium's old headless mode: the same
# engine for less CPU than the full chromium, which kaleido draws the reports' charts with); fonts-noto-cjk draws the
# Chinese text. Installed only when missing and only as root; otherwise they skip (in CI, where CI is set, they fail).
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromium-headless-shell >/dev/null 2>&1 \
		&& { ! command -v dpkg-query >/dev/null 2>&1 || dpkg-query -W -f='$${Status}' fonts-noto-cjk 2>/dev/null | grep -q 'ok installed'; }; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium, chromium-headless-shell and fonts-noto-cjk for the browser tests"; \
		apt-get update -q \
			&& DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-headless-shell fonts-noto-cjk; \
	else \
		echo "note: chromium, chromium-headless-shell or fonts-noto-cjk is missing and this is not root: the browser tests will skip"; \
	fi

# The database source tests start a real PostgreSQL and MariaDB in a temporary folder (tests/dbserver.py).
# Installed only when missing and only as root; otherwise they skip (in CI, where CI is set, they fail).
databases:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || missing=" postgresql"; \
	command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || [ -x /usr/sbin/mysqld ] || missing="$$missing mariadb-server"; \
	if [ -z "$$missing" ]; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing$$missing for the database source tests"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	else \
		echo "note:$$missing not installed and this is not root: the database source tests will skip"; \
	fi

# The Spark engine's tests (tests/test_spark*.py) start a standalone master and worker from the pyspark
# package (the spark extra; pip builds its ~457 MB wheel once); its Java is Debian's openjdk-17-jre-headless,
# installed only when missing and only as root; otherwise they skip (in CI, where CI is set, they fail).
SPARK_STAMP := $(VENV)/.installed-spark
$(SPARK_STAMP): pyproject.toml constraints.txt | $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,spark]'
	touch $(SPARK_STAMP)

spark: $(SPARK_STAMP)
	@if command -v java >/dev/null 2>&1 \
		&& { ! command -v dpkg-query >/dev/null 2>&1 || dpkg-query -W -f='$${Status}' openjdk-17-jre-headless 2>/dev/null | grep -q 'ok installed'; }; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing openjdk-17-jre-headless for the Spark engine tests"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q openjdk-17-jre-headless; \
	else \
		echo "note: no Java and this is not root: the Spark engine tests will skip"; \
	fi

test: lint typecheck browser databases spark pytest ## the whole suite, as CI runs it

benchmark: install ## refresh at medium and large against the DuckDB floor; writes docs/benchmarks.md
	$(BIN)/python benchmarks/refresh.py --sizes medium large

benchmark-extract: install databases ## 10M rows from a local PostgreSQL into a snapshot, against COPY TO file
	$(BIN)/python benchmarks/extract.py

constraints: install ## re-pin every resolved package after changing pyproject.toml
	{ head -2 constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | grep -v '^#'; } > constraints.tmp
	mv constraints.tmp constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
