# cryosift: `make demo` and `make test` set everything up from scratch.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.cryosift-installed

.PHONY: install demo test lint typecheck docs bench clean system-deps

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

# Debian packages the tests use: headless Chromium (the report's browser test) and RELION 3.1
# (the real-RELION tests: relion_pipeliner, relion_preprocess, relion_refine ...). Needs root
# or sudo; what cannot be installed is skipped by its tests with the reason.
system-deps:
	@missing=""; \
	  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	    missing="$$missing chromium chromium-driver"; \
	  command -v relion_pipeliner >/dev/null 2>&1 || missing="$$missing relion"; \
	  if [ -n "$$missing" ]; then \
	    SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO="sudo -n"; \
	    ($$SUDO apt-get update -qq && \
	     $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) || \
	    echo "could not install$$missing: the tests that need them will be skipped"; \
	  fi

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

# The documentation site (mkdocs-material) into site/; --strict: a broken link or a page
# missing from the navigation fails the build.
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

# pytest exits 5 when it collects no test: make treats that, like any failure, as an error.
# The tests run in one worker per core (pytest-xdist), each test file in one worker so that its
# module fixtures are made once, the slowest files first (tests/conftest.py's SLOW_FILES, kept
# in that order by --no-loadscope-reorder); tests/conftest.py shares the cores' threads among
# the workers, and the whole runs that several files read are made once for all of them.
test: install lint typecheck docs system-deps
	$(PY) -m pytest -q -n auto --dist loadfile --no-loadscope-reorder --durations=20

bench: install
	$(PY) benchmarks/outlier_throughput.py
	$(PY) benchmarks/synthetic_outliers.py
	$(PY) benchmarks/real_outliers.py
	$(PY) benchmarks/picking_empiar10017.py
	$(PY) benchmarks/picking_peers.py
	$(PY) benchmarks/picking_carry.py
	$(PY) benchmarks/classify_2d.py
	$(PY) benchmarks/classify_scale.py
	$(PY) benchmarks/clean_on_picks.py
	$(PY) benchmarks/pipeline_throughput.py

clean:
	rm -rf demo_out benchmarks/_work .pytest_cache .ruff_cache .mypy_cache site
