# The two commands: `make run` starts the service, `make test` runs the tests.
# Both build .venv on first use; torch is pinned to the CPU build (unpinned torch pulls CUDA).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0

.PHONY: run test lint fuzz openapi bench clean

$(BIN)/loss-service: pyproject.toml client/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/pip install --quiet -e '.[test]' -e ./client
	touch $@

run: $(BIN)/loss-service
	$(BIN)/loss-service serve

test: lint
	$(BIN)/pytest --cov --cov-report=term:skip-covered

# Long random runs: the OpenAPI fuzz test, /v2 inference requests and the parity properties,
# unseeded.
fuzz: $(BIN)/loss-service
	HYPOTHESIS_PROFILE=fuzz FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-400} $(BIN)/pytest -q \
		tests/api/test_fuzz.py tests/api/test_fuzz_v2.py tests/api/test_requests.py tests/losses

lint: $(BIN)/loss-service
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

openapi: $(BIN)/loss-service
	$(BIN)/loss-service openapi

bench: $(BIN)/loss-service
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis .coverage
