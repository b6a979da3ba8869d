# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.runtime
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test lint typecheck bench clean image image-test

# The service's own dependencies: all that `make run` needs (the deid extra: spaCy's small
# English NER, which de-identification uses when it is installed).
$(RUNTIME): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[deid]'
	touch $(RUNTIME)

# Plus the tools of the test suite (pytest, ruff, mypy, Playwright, schemathesis).
$(STAMP): $(RUNTIME)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

## run: create .venv, install, prepare the embedded default and start the service
run: $(RUNTIME)
	$(BIN)/clinsight serve

## test: create .venv, install, lint, type-check, check the import layers and run the whole suite (slow checks excluded)
test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

## bench: the image benchmark (long: about 90 minutes on 2 cores)
bench: $(STAMP)
	$(BIN)/python benchmarks/imaging.py

## image: build the container image air-gapped (debootstrap base, host wheelhouse, buildah; root)
image: $(RUNTIME)
	mkdir -p build/image
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^clinsight' > build/image/lock.txt
	LOCK=build/image/lock.txt PYTHON=$(BIN)/python deploy/wheelhouse.sh
	deploy/build-base.sh
	deploy/build-image.sh

## image-test: run the image and check /health, /ready and a diagnosis over TLS (slow)
image-test: $(STAMP)
	$(BIN)/python -m pytest -m slow tests/deploy/test_image.py $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
