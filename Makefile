PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ROWS ?= 2000000
SMALL ?= 100000
BIG ?= 8000000
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: demo test test-fast lint bench bench-cli bench-growth bench-api clean stack stack-down image browser screenshots

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/activate pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[dev,bench]"
	touch $@

demo: $(VENV)/.installed
	$(BIN)/ventureos demo

test: $(VENV)/.installed-dev browser
	$(BIN)/ruff check .
	$(BIN)/pytest

# The browser tests (tests/test_web.py) drive Debian's Chromium through Playwright (pip installs the
# driver; its own browser download is not used): install Chromium from apt when it is missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "chromium is missing: installing Debian's chromium and chromium-driver with apt-get"; \
	  { apt-get update -q && apt-get install -y -q chromium chromium-driver; } || { \
	    echo "Could not install Chromium, which the browser tests need. Install it as root:" >&2; \
	    echo "  apt-get install -y chromium chromium-driver" >&2; exit 1; }; }

# The README's screenshots (docs/screenshots/), taken by the browser tests from their demo data.
screenshots: $(VENV)/.installed-dev browser
	VENTUREOS_SCREENSHOTS=docs/screenshots $(BIN)/pytest tests/test_web.py -q

# The inner loop: ruff and the tests that start no server (no Prefect API, no moto, no subprocess).
test-fast: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/pytest -m "not slow"

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

# The local Prefect stack (server, pool, queues, limits, */local deployments, worker): deployments/stack.py.
stack: $(VENV)/.installed
	$(BIN)/python deployments/stack.py up

stack-down: $(VENV)/.installed
	$(BIN)/python deployments/stack.py down

# The worker image with buildah (installed from apt when missing): docker/build_image.py.
# BASE_IMAGE=... overrides the Dockerfile's base; WORKER_IMAGE=... the tag (default localhost/ventureos-worker:dev).
image: $(VENV)/.installed
	$(BIN)/python docker/build_image.py $(if $(WORKER_IMAGE),--tag $(WORKER_IMAGE)) $(if $(BASE_IMAGE),--base $(BASE_IMAGE))

bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench.historical_load --rows $(ROWS)

clean:
	rm -rf $(VENV) .ventureos .pytest_cache .ruff_cache

# Run cost against lake size (bench/growth.py): daily, feed, append and sync on a SMALL and a BIG lake.
bench-growth: $(VENV)/.installed-dev
	$(BIN)/python -m bench.growth --small $(SMALL) --big $(BIG) $(if $(MAINTAIN),--maintain)

bench-cli: $(VENV)/.installed-dev
	$(BIN)/python -m bench.cli_startup --runs $(or $(RUNS),5)

# The read API under load (bench/api.py): ROWS generated violations, 50 clients; WORK=dir reuses a built lake;
# WORKERS=n server processes (default one per CPU).
bench-api: $(VENV)/.installed-dev
	$(BIN)/python -m bench.api --rows $(ROWS) $(if $(WORK),--work $(WORK)) $(if $(DURATION),--seconds $(DURATION)) $(if $(WORKERS),--workers $(WORKERS))
