# make demo  : set up .venv and run the main flow on the embedded default (mlp-digits)
# make test  : set up .venv and run the default test suite (slow tests excluded)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup sysdeps demo test test-all lint bench clean

# Debian packages the flow needs outside PyPI: Icarus Verilog (second simulator).
sysdeps:
	@command -v iverilog >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iverilog >/dev/null) \
	      || echo "warning: could not install iverilog (apt-get failed); Icarus tests will be skipped"; \
	  else echo "note: iverilog missing; install it with 'sudo apt-get install iverilog'"; fi; }

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

setup: sysdeps $(STAMP)

demo: setup
	$(VENV)/bin/hwgen demo

test: setup
	$(PY) -m pytest -q -n 2 -m "not slow"

test-all: setup
	$(PY) -m pytest -q -n 2

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	$(PY) benchmarks/run_all.py

clean:
	rm -rf build runs .pytest_cache
