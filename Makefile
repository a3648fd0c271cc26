# Two commands do all set-up on a fresh machine:
#   make book   create .venv if missing, install the pinned stack, execute every chapter (cpu profile), render _build/html
#   make test   create .venv if missing, install, run the test suite
# The venv is reinstalled only when the dependency spec (pyproject.toml or this Makefile) changes.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PROFILE ?= cpu

.PHONY: book test venv notebooks bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PY) -m pip install -e ".[test]"
	# torchattacks is only a yardstick for benchmarks/; its own pins would pull other torch builds
	$(PY) -m pip install --no-deps torchattacks==3.5.1
	# imagecorruptions (paper profile of chapter 5) pins the GUI OpenCV build; pyproject brings the headless one
	$(PY) -m pip install --no-deps imagecorruptions==1.1.2
	touch $(STAMP)

venv: $(STAMP)

book: $(STAMP)
	$(PY) -m robustbook build --profile $(PROFILE)

test: $(STAMP)
	$(PY) -m pytest

notebooks: $(STAMP)
	$(PY) -m robustbook sync

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf _build book/notebooks book/status.md
