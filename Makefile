# Two commands do all set-up on a fresh machine:
#   make book   create .venv if missing, install the pinned stack, execute every chapter (cpu profile), render _build/html
#   make test   the same set-up, plus headless Chromium for the browser test, then the test suite
# The venv is reinstalled only when the dependency spec (pyproject.toml, constraints.txt or this Makefile) changes.
PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
PROFILE ?= cpu
EDITION ?= instructor

.PHONY: book student test test-fast format venv browser data notebooks bench gpu-check clean

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PY) -m pip install -c constraints.txt -e ".[book,robustbench,corruptions,test,cluster]"
	# torchattacks is only a yardstick for benchmarks/; its own pins would pull other torch builds
	$(PY) -m pip install --no-deps torchattacks==3.5.1
	# imagecorruptions (paper profile of chapter 5) pins the GUI OpenCV build; pyproject brings the headless one
	$(PY) -m pip install --no-deps imagecorruptions==1.1.2
	# the wheels the Colab simulation test installs offline (everything robustbook[colab] needs but torch)
	$(PY) tests/colab_wheelhouse.py $(VENV)/wheelhouse
	touch $(STAMP)

venv: $(STAMP)

# Headless Chromium for the browser test (Debian's package; needs root or sudo and the Debian registry)
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { echo "installing Debian's chromium for the browser test"; \
	    $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -q chromium >/dev/null || \
	    { $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -q >/dev/null && \
	      $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -q chromium >/dev/null; }; }

# Fashion-MNIST, the cpu book's images (Debian's package; skipped where apt-get is missing or refused: the
# library then reads ROBUSTBOOK_DATA or downloads with torchvision, and says how to get the files otherwise)
FMNIST := /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz
data:
	@test -f $(FMNIST) || ! command -v apt-get >/dev/null 2>&1 || \
	  { echo "installing Debian's dataset-fashion-mnist (the book's images, 30 MB)"; \
	    $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
	    { $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -q >/dev/null 2>&1 && \
	      $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1; } || \
	    echo "could not install dataset-fashion-mnist; see the README (Fashion-MNIST on other systems)"; }

book: $(STAMP) data
	$(PY) -m robustbook build --profile $(PROFILE) --edition $(EDITION)

student: $(STAMP) data
	$(PY) -m robustbook build --profile $(PROFILE) --edition student

test: $(STAMP) browser data
	$(PY) -m pytest

# the edit-test loop: everything but the tests marked slow (chapters executed, the book rendered, the browser,
# the profile runs, Ray), in about two minutes; `make test` still runs everything
test-fast: $(STAMP) data
	$(PY) -m pytest -m "not slow"

# the chapters' code to the page width (ruff format, 80 columns: notebooks/ruff.toml), then the Colab notebooks
format: $(STAMP)
	$(VENV)/bin/ruff format notebooks/[0-9]*.py
	$(PY) -m robustbook sync

# on a machine with a CUDA GPU (at most about 10 minutes): gpu tests, then chapters 1, 3, 4, 5, 6 in the colab
# profile on local data; writes _build/gpu-check.json. Without a GPU it stops at once, saying so.
gpu-check: $(STAMP) data
	$(PY) -m robustbook gpu-check

notebooks: $(STAMP)
	$(PY) -m robustbook sync

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf _build book/notebooks book/status.md
