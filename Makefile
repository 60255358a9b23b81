PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo bench lint venv clean lab-tools

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[keepass,test,dev]'
	touch $(STAMP)

venv: $(STAMP)

# The network-namespace tests need iproute2; as root on Debian it is installed here,
# elsewhere those tests are skipped with the reason.
lab-tools:
	@command -v ip >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null; } \
	  || echo "note: iproute2 is missing; the network-namespace tests will be skipped"

test: $(STAMP) lab-tools
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/python -m wifisync.demo

bench: $(STAMP)
	$(BIN)/python bench/vault.py
	$(BIN)/python bench/sync_core.py
	$(BIN)/python bench/propagation.py
	$(BIN)/python bench/import.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info
