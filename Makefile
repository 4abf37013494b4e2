# Every target creates the virtualenv it needs; a fresh clone needs only python3 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv run test lint proto records e2e bench bench-local package clean mutate mutate-resume mutate-report

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

# PORT, EMULATOR_PORT, RELOAD=1, RUN_DATA=<dir>, RUN_LOG=<file>, DEFAULT_DATABASE= DEFAULT_TABLE=
# (empty: no default destination, as deployed): see scripts/run_local.py. Run as a module so the
# project's packages import from the root without touching sys.path.
run: $(STAMP)
	@$(BIN)/python -m scripts.run_local

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

# Mutation testing, slow and not part of `make test` or CI (README: Mutation testing). mutmut
# mutates chalicelib/ (not the generated prompb/) in a copy under mutants/, runs the unit and
# integration tests that call each mutated function (tests marked slow, i.e. test_package.py, are
# left out) and writes mutation-report.md: score per module, every survivor with file:line.
# On 2 shared cores with MUTATE_JOBS=2: everything about 1 h 50 min, SAMPLE=3 about 45 min.
# Always starts afresh, so tests added since the last run count.
#   make mutate                                         everything
#   make mutate MODULES="chalicelib/liveanalytics/writer.py chalicelib/codec.py"   some modules only
#   make mutate SAMPLE=3                                about 1 mutant in 3 (see below)
#   make mutate-resume    test the mutants a sampled or interrupted run left out
#   make mutate-report    rewrite the report from mutants/
MUTATE_STAMP := $(VENV)/.mutate-installed
MUTATE_JOBS ?= 2
MODULES ?=

$(MUTATE_STAMP): $(STAMP) requirements-mutate.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-mutate.txt
	touch $(MUTATE_STAMP)

# SAMPLE=2|3|5|10 tests about 1 mutant in N (those whose number ends in given digits, so every
# function keeps its first mutant); `make mutate-resume` later tests the rest.
SAMPLE ?=
sample_digits_2 := 13579
sample_digits_3 := 147
sample_digits_5 := 16
sample_digits_10 := 1
mutant_suffix = $(if $(SAMPLE),__mutmut_*[$(or $(sample_digits_$(SAMPLE)),$(error SAMPLE must be 2, 3, 5 or 10))],)
mutant_globs = $(if $(MODULES),$(foreach m,$(MODULES),'$(subst /,.,$(basename $(m))).*$(mutant_suffix)'),$(if $(SAMPLE),'chalicelib.*$(mutant_suffix)'))

mutate: $(MUTATE_STAMP)
	rm -rf mutants
	nice -n 19 $(BIN)/mutmut run --max-children $(MUTATE_JOBS) $(mutant_globs)
	$(BIN)/python scripts/mutation_report.py

mutate-resume: $(MUTATE_STAMP)
	nice -n 19 $(BIN)/mutmut run --max-children $(MUTATE_JOBS)
	$(BIN)/python scripts/mutation_report.py

mutate-report: $(MUTATE_STAMP)
	$(BIN)/python scripts/mutation_report.py

clean:
	rm -rf $(VENV) dist .pytest_cache .hypothesis mutants
