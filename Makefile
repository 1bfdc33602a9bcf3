# The two commands: `make run` starts the service, `make test` runs the tests.
# Both build .venv on first use: torch pinned to its CPU build (an unpinned torch pulls CUDA),
# every other version pinned by constraints.txt (`make lock` refreshes it). `make run` installs
# only what the service needs; the test tools and the client come with `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
# pip applies it to every install, build environments included.
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt
PIP := $(BIN)/pip install --quiet --disable-pip-version-check

.PHONY: run test lint fuzz openapi protos bench lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) torch==$(TORCH_VERSION)

# The service alone.
$(VENV)/.service: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e .
	touch $@

# The test tools and the client, beside it.
$(VENV)/.tests: $(VENV)/.service client/pyproject.toml
	$(PIP) -e '.[test]' -e './client[parquet,plot]'
	touch $@

run: $(VENV)/.service
	$(BIN)/loss-service serve

test: lint
	$(BIN)/pytest --cov --cov-report=term:skip-covered

# Long random runs, unseeded: the OpenAPI fuzz test, /v2 inference requests (REST and gRPC)
# and the parity and merge properties (losses and grades).
fuzz: $(VENV)/.tests
	HYPOTHESIS_PROFILE=fuzz FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-400} $(BIN)/pytest -q \
		tests/api/test_fuzz.py tests/api/test_fuzz_v2.py tests/e2e/test_fuzz_grpc.py tests/losses \
		tests/grades

lint: $(VENV)/.tests
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

openapi: $(VENV)/.service
	$(BIN)/loss-service openapi

# service/grpc's protobuf modules and their .pyi stubs, from docs/open_inference_grpc.proto
# (checked in; tests/e2e/test_grpc.py checks that they are what this writes).
protos: $(VENV)/.tests
	$(BIN)/python -m tools.protos

bench: $(VENV)/.tests
	$(PIP) -e '.[bench]'
	$(BIN)/python -m bench.run

# Every version the service, the tests, the client, the benchmarks and the image install,
# resolved afresh in a throwaway venv beside torch's CPU build (uv and poetry would not find
# that build on this disk and would pull CUDA's).
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	env -u PIP_CONSTRAINT .lock-venv/bin/pip install --quiet --disable-pip-version-check --upgrade pip
	env -u PIP_CONSTRAINT .lock-venv/bin/pip install --quiet torch==$(TORCH_VERSION)
	env -u PIP_CONSTRAINT .lock-venv/bin/pip install --quiet '.[test,bench]' './client[parquet,plot]' setuptools wheel
	{ echo "# Every version but torch's (TORCH_VERSION in the Makefile and the Dockerfile): pip -c."; \
	  echo "# Made by \`make lock\` with $$(.lock-venv/bin/python --version); do not edit by hand."; \
	  .lock-venv/bin/pip freeze --all | grep -v -i -E '^(torch==|loss[-_]service)'; \
	} > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis .coverage
