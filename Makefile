# Every target creates the virtualenv it needs; a fresh clone needs only python3 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv run test lint proto records e2e bench bench-local package clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

# PORT, EMULATOR_PORT, RELOAD=1, RUN_DATA=<dir>, RUN_LOG=<file>: see scripts/run_local.py.
run: $(STAMP)
	@$(BIN)/python scripts/run_local.py

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest tests/unit tests/integration $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

proto: $(STAMP)
	$(BIN)/python scripts/gen_proto.py

records: $(STAMP)
	@$(BIN)/python -m local_timestream.show_records $(ARGS)

e2e: $(STAMP)
	bash scripts/install_e2e_deps.sh
	$(BIN)/python -m pytest tests/e2e $(PYTEST_ARGS)

package: $(STAMP)
	bash scripts/package.sh

bench: $(STAMP)
	$(BIN)/python bench/bench_write.py

bench-local: $(STAMP)
	$(BIN)/python bench/bench_local_query.py $(ARGS)

clean:
	rm -rf $(VENV) dist .pytest_cache .hypothesis
