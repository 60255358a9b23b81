PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed

.PHONY: test demo bench bench-full bench-tools lint venv clean lab-tools man

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[keepass,test,dev]'
	touch $(STAMP)

venv: $(STAMP)

# The network-namespace tests need iproute2, the service tests systemd-analyze (package
# systemd), unshare/mount (util-linux, mount) and python3-seccomp (the unit's system call
# filter); as root on Debian they are installed here, elsewhere those tests are skipped
# with the reason.
LAB_PACKAGES := ip:iproute2 systemd-analyze:systemd unshare:util-linux mount:mount

lab-tools:
	@missing=""; for pair in $(LAB_PACKAGES); do command -v $${pair%%:*} >/dev/null 2>&1 \
	  || missing="$$missing $${pair#*:}"; done; \
	/usr/bin/python3 -c 'import seccomp' 2>/dev/null || missing="$$missing python3-seccomp"; \
	[ -z "$$missing" ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	  --no-install-recommends $$missing >/dev/null; } \
	  || echo "note:$$missing missing; the tests that need them will be skipped"

test: $(STAMP) lab-tools
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/python -m wifisync.demo

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[bench]'
	touch $(BENCH_STAMP)

# bench/compare_syncthing.py runs Syncthing beside wifisync and bench/cli.py reads peak RSS
# with GNU time: as root on Debian both are installed here (with iproute2 for the network
# namespaces); elsewhere those figures are skipped with the reason.
bench-tools: lab-tools
	@{ command -v syncthing && test -x /usr/bin/time; } >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] \
	  && command -v apt-get >/dev/null 2>&1 && apt-get update -qq \
	  && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq syncthing time >/dev/null; } \
	  || echo "note: syncthing or GNU time is missing; their figures will be skipped"

# Every bench in bench/, quick sizes (under 10 minutes): bench/results/latest.{md,json,png}
bench: $(BENCH_STAMP) bench-tools
	$(BIN)/python bench/run.py

# The same with the large sizes and the long windows (100k syncs, idle CPU, kill -9 loop)
bench-full: $(BENCH_STAMP) bench-tools
	$(BIN)/python bench/run.py --full

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# The man page is generated from the parser (argparse-manpage); a test checks it is current.
MANPAGE_ARGS := --module wifisync.cli.main --function build_parser --project-name wifisync \
	--prog wifisync --manual-title "wifisync manual" \
	--description "a password vault synced over your own network" \
	--url https://github.com/wifisync/wifisync

man: $(STAMP)
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || date +%s) \
	  $(BIN)/argparse-manpage $(MANPAGE_ARGS) \
	  --version "$$($(BIN)/python -c 'import wifisync; print(wifisync.__version__)')" \
	  --output docs/wifisync.1

clean:
	rm -rf $(VENV) build *.egg-info
