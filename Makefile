# One command per job on a fresh machine: `make demo`, `make test`. Both run `make setup` first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# An offline provider mirror if the machine has one (see docs/sandbox.md); empty otherwise,
# in which case terraform downloads providers as usual.
export INFRA_TF_PLUGIN_MIRROR ?= $(shell scripts/find-tf-mirror)
PYTEST_ARGS ?=

.PHONY: setup demo test golden lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(BIN)/infra validate examples/sandbox.yaml
	$(BIN)/infra up --sandbox --auto-approve examples/sandbox.yaml
	$(BIN)/infra status --sandbox examples/sandbox.yaml
	@echo
	@echo "Next: '$(BIN)/infra history demo', '$(BIN)/infra down --sandbox examples/sandbox.yaml',"
	@echo "      '$(BIN)/infra sandbox stop' (the emulator keeps running between commands)."

lint: setup
	$(BIN)/ruff check .
	terraform fmt -check -recursive terraform templates

test: setup lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The only way to rewrite tests/golden/ (after an intended change): review `git diff tests/golden/`.
# The golden tests refuse INFRA_UPDATE_GOLDEN when CI is set.
golden: setup
	INFRA_UPDATE_GOLDEN=1 $(BIN)/python -m pytest -q tests/unit/test_render_golden.py -k matches_golden
	@git diff --stat -- tests/golden/ 2>/dev/null || true

bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf build .infra .infra-heads .pytest_cache
