# The two commands of the README: `make demo` (the main job) and `make test`.
# Each creates .venv and installs what it needs on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo serve test lint venv constraints clean

$(STAMP): pyproject.toml gslb/dns/_mmsg.c
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

serve: $(STAMP)
	$(BIN)/gslb serve --config zones --dns 127.0.0.1:5353 --api 127.0.0.1:8053

demo: $(STAMP)
	$(BIN)/gslb demo

lint: $(STAMP)
	$(BIN)/ruff check gslb tests bench schemas docs
	$(BIN)/ruff format --check gslb tests bench schemas docs
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest

# deploy/constraints.txt (the image's exact versions): what `pip install .` resolves today,
# in a scratch venv; review the diff, then rebuild the image.
constraints:
	rm -rf .constraints-venv
	$(PY) -m venv .constraints-venv
	.constraints-venv/bin/python -m pip install -q .
	{ sed -n '/^#/p' deploy/constraints.txt; \
	  .constraints-venv/bin/python -m pip freeze --exclude gslb; } > deploy/constraints.txt.new
	mv deploy/constraints.txt.new deploy/constraints.txt
	rm -rf .constraints-venv

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
