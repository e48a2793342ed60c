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
	$(VENV)/bin/cryosift simulate micrographs -o demo_out/micrographs -n 4 --seed 0
	$(VENV)/bin/cryosift extract demo_out/micrographs/micrographs_ctf.star demo_out/micrographs/Coordinates \
		--box-A 176 --bin 2 --phase-flip --invert --diameter-A 88 -o demo_out/extract
	$(VENV)/bin/cryosift clean demo_out/extract/particles.star --diameter-A 88 -o demo_out/clean_extracted
	$(VENV)/bin/cryosift simulate particles -o demo_out/particles --inliers 600 --outliers 600 --seed 0
	$(VENV)/bin/cryosift clean demo_out/particles/particles.star --diameter-A 88 -o demo_out/clean
	$(PY) -m cryosift.evaluate.outliers demo_out/clean/scores.csv demo_out/particles/truth.csv
	@echo "outputs: demo_out/micrographs (MRC + ground-truth STAR), demo_out/extract (particles.star + Particles/*.mrcs), demo_out/clean/{inliers.star,outliers.star,scores.csv}"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# pytest exits 5 when it collects no test: make treats that, like any failure, as an error.
test: install lint
	$(PY) -m pytest -q

bench: install
	$(PY) benchmarks/outlier_throughput.py
	$(PY) benchmarks/synthetic_outliers.py
	$(PY) benchmarks/real_outliers.py
	$(PY) benchmarks/picking_empiar10017.py

clean:
	rm -rf demo_out benchmarks/_work .pytest_cache .ruff_cache
