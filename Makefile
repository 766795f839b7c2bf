# One command per job on a fresh machine: `make demo`, `make test`. Both run `make setup` first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# An offline provider mirror if the machine has one (see docs/sandbox.md); empty otherwise,
# in which case terraform downloads providers as usual.
export INFRA_TF_PLUGIN_MIRROR ?= $(shell scripts/find-tf-mirror)
# Two workers, one test file per worker at a time (--dist loadfile): module fixtures (the SSH
# test hosts, a sandbox rollout) are built once, and the slow integration modules overlap.
PYTEST_JOBS ?= 2
PYTEST_ARGS ?= -n $(PYTEST_JOBS) --dist loadfile --durations=15
# checkov (terraform scan) lives in its own virtualenv, outside the app's dependencies.
INFRA_TOOLS_CACHE ?= $(or $(INFRA_TEST_CACHE),/var/cache/infra-tests)
CHECKOV_VENV ?= $(INFRA_TOOLS_CACHE)/checkov-venv
export INFRA_CHECKOV ?= $(CHECKOV_VENV)/bin/checkov
# ansible-lint (--profile production over ansible/) in its own virtualenv too.
ANSIBLE_LINT_VENV ?= $(INFRA_TOOLS_CACHE)/ansible-lint-venv
export INFRA_ANSIBLE_LINT ?= $(ANSIBLE_LINT_VENV)/bin/ansible-lint

.PHONY: setup demo test test-deps golden lint bench clean checkov ansible-lint provider-schemas check-pins

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

$(CHECKOV_VENV)/bin/checkov:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet 'checkov>=3.2,<4'

checkov: $(CHECKOV_VENV)/bin/checkov

$(ANSIBLE_LINT_VENV)/bin/ansible-lint:
	$(PYTHON) -m venv $(ANSIBLE_LINT_VENV)
	$(ANSIBLE_LINT_VENV)/bin/python -m pip install --quiet 'ansible-lint>=25.1,<27'

ansible-lint: $(ANSIBLE_LINT_VENV)/bin/ansible-lint

# The azurerm and google provider schemas (from the prebuilt cdktf packages' jsii assemblies)
# and python-hcl2, for tests/unit/test_provider_schemas.py; outside the app. Two releases of
# each package (provider-package-version): the newest checked (azurerm 4.55.0, google 6.50.0)
# and the one generated from the floor versions.tf pins (azurerm 4.40.0, google 6.20.0); the
# same list as RELEASES in tests/provider_schema.py. ~180 MB of wheels, each fetched once.
SCHEMA_DIR ?= $(INFRA_TOOLS_CACHE)/schemas
HCL2_VENV  ?= $(INFRA_TOOLS_CACHE)/hcl2-venv
SCHEMA_WHEELS := azurerm-14.23.1 google-16.12.1 azurerm-14.9.0 google-14.19.0
$(HCL2_VENV)/bin/python:
	$(PYTHON) -m venv $(HCL2_VENV)
	$(HCL2_VENV)/bin/python -m pip install --quiet 'python-hcl2>=7,<8'

$(SCHEMA_DIR)/cdktf_cdktf_provider_%-py3-none-any.whl: | $(HCL2_VENV)/bin/python
	mkdir -p $(SCHEMA_DIR)
	$(HCL2_VENV)/bin/python -m pip download --quiet --no-deps -d $(SCHEMA_DIR) \
		'cdktf-cdktf-provider-$(subst -,==,$*)'

provider-schemas: $(HCL2_VENV)/bin/python $(SCHEMA_WHEELS:%=$(SCHEMA_DIR)/cdktf_cdktf_provider_%-py3-none-any.whl)

# The system packages the SSH-host tests need (debootstrap, openssh-server, gnupg, dpkg-dev),
# the same list .ci/run installs; uses sudo when not root.
test-deps:
	scripts/install-test-deps

# `make test` installs them too when it runs as root; otherwise it says what is missing (those
# tests skip, and the end of the run names them and this command).
test: setup lint checkov ansible-lint provider-schemas
	scripts/install-test-deps --if-root
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The only way to rewrite tests/golden/ (after an intended change): review `git diff tests/golden/`.
# The golden tests refuse INFRA_UPDATE_GOLDEN when CI is set.
golden: setup
	INFRA_UPDATE_GOLDEN=1 $(BIN)/python -m pytest -q tests/unit/test_render_golden.py -k matches_golden
	@git diff --stat -- tests/golden/ 2>/dev/null || true

bench: setup
	$(BIN)/python -m bench

# Release check (needs the package index, so not part of `make test`): every wheel set the
# inference_onnx role pins (ansible/roles/inference_onnx/vars/main.yml) resolves for each target
# Python. CHECK_PINS_ARGS: e.g. --index-url URL for a site mirror.
check-pins: setup
	$(BIN)/python scripts/check-pins $(CHECK_PINS_ARGS)

clean:
	rm -rf build .infra .infra-heads .pytest_cache
