# The two commands a newcomer needs: `make serve` and `make test`.
# Both build the virtual environment on first use (Python 3.11+).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: serve test test-fast screenshots chromium lint openapi bench clean docker-wheels docker-smoke

$(BIN)/smsreg: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

serve: $(BIN)/smsreg  ## start on the embedded default: SQLite file, console SMS sender, 127.0.0.1:8000
	$(BIN)/smsreg serve

# The browser tests drive the operating system's Chromium (and a Japanese font, for the
# console's screenshots); installed here when missing
# (as root, or with sudo), or the tests say how.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null 2>&1; then SUDO=sudo; \
		else echo "make: no chromium; install Debian's chromium package to run the browser tests"; exit 0; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium fonts-ipafont-gothic; }

test: $(BIN)/smsreg chromium  ## lint, types, import contracts, then the suite on SQLite and (when it answers) PostgreSQL
	$(BIN)/ruff check app tests bench
	$(BIN)/ruff format --check app tests bench
	$(BIN)/mypy app
	$(BIN)/lint-imports
	$(BIN)/pytest -n 2

test-fast: $(BIN)/smsreg  ## the edit-test loop: the suite on SQLite only, in parallel
	$(BIN)/pytest -n auto -m "not slow and not browser and not contract" -k "not postgresql" -q

screenshots: $(BIN)/smsreg chromium  ## the browser tests, saving the console's pages to docs/console/
	SMSREG_SCREENSHOTS=1 $(BIN)/pytest -m browser tests/console -q

openapi: $(BIN)/smsreg
	$(BIN)/smsreg openapi > openapi.yaml

bench: $(BIN)/smsreg
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .smsreg .pytest_cache .mypy_cache .ruff_cache

# Containers (docs/containers.md). Neither target is part of `make test`: both need Docker
# or build for it, and CI has no use for either.
docker-wheels:  ## every wheel the image installs, built here, for an image build with no package index
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
		|| { echo "docker-wheels: needs Python 3.11, the image's (set PYTHON=python3.11)"; exit 1; }
	rm -rf docker/wheels && mkdir -p docker/wheels
	@# The build backend too: an offline `pip install /src` builds the package from them.
	$(PYTHON) -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], "wheel", sep="\n")' \
		> docker/wheels/build-requires.txt
	$(PYTHON) -m pip wheel --quiet --wheel-dir docker/wheels . -r docker/wheels/build-requires.txt
	rm -f docker/wheels/smsreg-*.whl

docker-smoke:  ## build the image, run the compose stack, approve one verification through it, tear down
	docker/smoke.sh
