# The two commands a newcomer needs: `make serve` and `make test`.
# Both build the virtual environment on first use (Python 3.11+).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: serve test test-fast lint openapi bench clean

$(BIN)/smsreg: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

serve: $(BIN)/smsreg  ## start on the embedded default: SQLite file, console SMS sender, 127.0.0.1:8000
	$(BIN)/smsreg serve

test: $(BIN)/smsreg  ## lint, types, import contracts, then the suite on SQLite and (when it answers) PostgreSQL
	$(BIN)/ruff check app tests bench
	$(BIN)/ruff format --check app tests bench
	$(BIN)/mypy app
	$(BIN)/lint-imports
	$(BIN)/pytest -n 2

test-fast: $(BIN)/smsreg  ## the edit-test loop: the suite on SQLite only, in parallel
	$(BIN)/pytest -n auto -m "not slow" -k "not postgresql" -q

openapi: $(BIN)/smsreg
	$(BIN)/smsreg openapi > openapi.yaml

bench: $(BIN)/smsreg
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .smsreg .pytest_cache .mypy_cache .ruff_cache
