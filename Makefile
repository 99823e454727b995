# MGCA-Lite: two commands on a fresh machine — `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lab course bench clean-notebooks help

help:
	@echo "make demo   - set up .venv and run the main job on built-in SynthCXR data"
	@echo "make test   - set up .venv and run every test, notebooks included (smoke mode)"
	@echo "make lab    - JupyterLab on the course notebooks"
	@echo "make course - execute every notebook with papermill into build/course/"
	@echo "make bench  - print the speed benchmarks (ratios, not timed tests)"

# Re-install whenever the package metadata changes.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m mgca_lite demo --output-dir runs/demo

# Every test, the committed notebooks compared strictly (nbval); then the notebooks once more on a
# second math-kernel path (MKL's AVX2 branch, ATen without its vectorised kernels, one thread), so an
# output that depends on float rounding fails here and not on a learner's Intel, AMD or Apple laptop
# (docs/notebooks.md, "Portable outputs").
test: $(STAMP)
	MGCA_SMOKE=1 $(PY) -m pytest -q --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg tests notebooks
	MGCA_SMOKE=1 MKL_CBWR=AVX2 ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=1 \
	  $(PY) -m pytest -q --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg notebooks

lab: $(STAMP)
	$(PY) -m jupyter lab notebooks

course: $(STAMP)
	mkdir -p build/course
	for nb in notebooks/[0-9][0-9]_*.ipynb; do \
	  $(PY) -m papermill -k python3 --cwd notebooks "$$nb" "build/course/$$(basename $$nb)" || exit 1; \
	done

bench: $(STAMP)
	$(PY) -m mgca_lite bench synth
	$(PY) -m mgca_lite bench losses
	$(PY) -m mgca_lite bench pretrain --config synth_tiny

clean-notebooks: $(STAMP)
	$(PY) tools/clean_notebooks.py notebooks/*.ipynb
