# cryosift: `make demo` and `make test` set everything up from scratch.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.cryosift-installed

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	# Take the local CPU build of torch first, so pip never resolves a CUDA build.
	$(PY) -m pip install --disable-pip-version-check -q torch==2.13.0
	$(PY) -m pip install --disable-pip-version-check -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	rm -rf demo_out
	$(PY) -m cryosift.simulate.toy demo_out/toy --seed 0
	$(VENV)/bin/cryosift clean demo_out/toy/particles.star --radius-px 12 -o demo_out/clean
	$(PY) -m cryosift.evaluate.outliers demo_out/clean/scores.csv demo_out/toy/truth.csv
	@echo "outputs: demo_out/clean/{inliers.star,outliers.star,scores.csv}"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# pytest exits 5 when it collects no test: make treats that, like any failure, as an error.
test: install lint
	$(PY) -m pytest -q

bench: install
	$(PY) benchmarks/outlier_throughput.py

clean:
	rm -rf demo_out benchmarks/_work .pytest_cache .ruff_cache
