# The two README commands: `make demo` and `make test`. Both create .venv and install the
# pinned dependencies (constraints.txt) first; nothing has to be installed by hand.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export SOP_HOME ?= $(CURDIR)/.sop
export DAGSTER_HOME ?= $(SOP_HOME)/dagster
export SOP_WAREHOUSE_PATH ?= $(SOP_HOME)/warehouse/sop.duckdb
DBT_FLAGS := --project-dir dbt_project --profiles-dir dbt_project --quiet

.PHONY: setup demo test test-slow lint format manifest bench bench-scale bench-overhead clean dev dbt-docs superset superset-run

EXTRAS := .[dev,cluster,postgres,bench]

# uv (pinned in constraints.txt, installed by pip into the venv) installs the pinned set in
# seconds where pip takes a minute and a half; pip is the fallback if uv cannot.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt uv || true
	$(BIN)/uv pip install --quiet --python $(BIN)/python -c constraints.txt -e "$(EXTRAS)" \
	  || $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e "$(EXTRAS)"
	@touch $(STAMP)

setup: $(STAMP) manifest

# dagster-dbt reads the dbt manifest at import time: build it before anything imports the code.
manifest: $(STAMP)
	@mkdir -p $(SOP_HOME)/warehouse $(DAGSTER_HOME)
	@$(BIN)/dbt parse $(DBT_FLAGS) >/dev/null

demo: setup
	$(BIN)/sop demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/sqlfluff lint dbt_project/models --disable-progress-bar --nocolor

# the PostgreSQL warehouse test starts its own server from Debian's packages: install them first
test: setup lint
	bash scripts/install_postgres.sh
	$(BIN)/pytest -q

test-slow: setup
	bash scripts/install_browser.sh
	bash bi/superset/install.sh --venv-only
	$(BIN)/pytest -q -m slow

bench: setup
	$(BIN)/python benchmarks/bench_generate.py
	$(BIN)/python benchmarks/bench_forecast.py --series 1000
	$(BIN)/python benchmarks/bench_supply.py
	$(BIN)/python benchmarks/bench_pipeline.py --series 1000

# the whole pipeline at the three sizes of the README table (about an hour on 2 cores)
bench-scale: setup
	$(BIN)/python benchmarks/bench_pipeline.py --series 1000 --series 10000 --series 50000

# the figures of the overhead targets (issue 15): the demo month (<= 45 s), the re-run after one
# demand override (<= 30% of a full run), everything but the forecast at 10,000 series (<= 25%)
bench-overhead: setup
	$(BIN)/python benchmarks/bench_pipeline.py --demo-month --override-rerun --no-plain
	$(BIN)/python benchmarks/bench_pipeline.py --series 10000 --override-rerun --no-plain

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

dev: setup
	$(BIN)/python -c "from pathlib import Path; from sop_pipeline.runtime.runner import write_dagster_yaml; write_dagster_yaml(Path('$(DAGSTER_HOME)'))"
	$(BIN)/dagster dev -w workspace.yaml

# dbt's documentation site (models, columns, tests, lineage) that the dbt assets in the Dagster
# UI link to (http://127.0.0.1:8580); reads the working database after a run (`make demo`).
DBT_DOCS_PORT ?= 8580
dbt-docs: setup
	$(BIN)/dbt docs generate $(DBT_FLAGS)
	$(BIN)/dbt docs serve $(DBT_FLAGS) --port $(DBT_DOCS_PORT) --host 127.0.0.1 --no-browser

# Apache Superset on the published plan: its own venv (.venv-superset, pins in
# bi/superset/constraints.txt), metadata in $SOP_HOME/superset, the dashboard of bi/superset/.
SUPERSET_PORT ?= 8088
superset: setup
	bash bi/superset/install.sh

superset-run:
	SUPERSET_CONFIG_PATH=$(CURDIR)/bi/superset/superset_config.py FLASK_APP=superset \
	  .venv-superset/bin/superset run -h 127.0.0.1 -p $(SUPERSET_PORT) --with-threads

clean:
	rm -rf $(VENV) .venv-superset dbt_project/target dbt_project/logs
