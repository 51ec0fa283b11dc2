# mmssis: the two commands of README.md.
#   make demo  - set up .venv (idempotent), generate the demo data, train + evaluate
#   make test  - set up .venv (idempotent), run the test suite
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# Repository code wins over the installed copy when run from here.
export PYTHONPATH := $(CURDIR):$(PYTHONPATH)
export MPLBACKEND := Agg

.PHONY: venv demo test test-fast clean-demo

venv:
	@bash scripts/setup_env.sh

demo: venv
	@$(PY) tools/misc/run_demo.py --work-dir work_dirs/demo

test: venv
	@$(PY) -m pytest tests -q -p no:cacheprovider --timeout 900 $(PYTEST_ARGS)

test-fast: venv
	@$(PY) -m pytest tests -q -p no:cacheprovider -m "not slow" $(PYTEST_ARGS)

clean-demo:
	rm -rf work_dirs/demo
