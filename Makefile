# cryosift: `make demo` and `make test` set everything up from scratch.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.cryosift-installed

.PHONY: install demo test lint bench clean browser

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	# Take the local CPU build of torch first, so pip never resolves a CUDA build.
	$(PY) -m pip install --disable-pip-version-check -q torch==2.13.0
	$(PY) -m pip install --disable-pip-version-check -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The demo: a dozen simulated micrographs (known particles, contamination, carbon edges,
# aggregates), then the whole pipeline on them with the truth to score against.
demo: install
	rm -rf demo_out
	$(VENV)/bin/cryosift simulate micrographs -o demo_out/micrographs -n 12 --seed 0
	$(VENV)/bin/cryosift run demo_out/micrographs/micrographs_ctf.star --diameter-A 88 \
		--truth demo_out/micrographs/Coordinates -o demo_out/run
	@echo "report: $(CURDIR)/demo_out/run/report.html (open it in a browser)"

# Headless Chromium for the report's browser test (Debian packages; needs root or sudo).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  ( (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) \
	    || echo "could not install chromium: the browser test will be skipped" )

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# pytest exits 5 when it collects no test: make treats that, like any failure, as an error.
test: install lint browser
	$(PY) -m pytest -q

bench: install
	$(PY) benchmarks/outlier_throughput.py
	$(PY) benchmarks/synthetic_outliers.py
	$(PY) benchmarks/real_outliers.py
	$(PY) benchmarks/picking_empiar10017.py
	$(PY) benchmarks/pipeline_throughput.py

clean:
	rm -rf demo_out benchmarks/_work .pytest_cache .ruff_cache
