# InsPose: `make demo` and `make test` do all the set-up on a fresh machine.
#
#   make setup      create .venv (Python 3.11) with torch, torchvision, detectron2 and the rest
#   make test       setup, then the whole test suite (CPU)
#   make test-fast  setup, then the suite without the tests marked slow (under 2 minutes on 2 cores)
#   make demo       setup, then train and evaluate on the synthetic dataset on the CPU
#
# DETECTRON2_SOURCE=<pip requirement or path to an upstream clone> installs upstream detectron2
# (with its compiled ops, as GPU users want) instead of the registry's v0.6 Python files.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.inspose-setup-complete
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
# setuptools < 81 still ships pkg_resources, which parts of detectron2 import.
PIP_PINS := "setuptools<81" wheel "numpy>=1.24" opencv-python pycocotools fvcore "pytest<9" pytest-xdist tqdm tensorboard onnx onnxruntime onnxscript
PYTEST_ARGS ?=
# pytest < 9: pytest 9 ignores the group suffix pytest-xdist gives a test's id, so `--dist loadgroup`
# would not keep the tests of one trained model on one worker (tests/conftest.py checks this).
# pytest-xdist workers for `make test` / `make test-fast` (auto: one per core; 0 runs in-process).
TEST_WORKERS ?= auto
XDIST := -n $(TEST_WORKERS) --dist loadgroup

.PHONY: setup test test-fast demo clean-venv

setup: $(STAMP)

$(STAMP): setup.py tools/install_detectron2.sh Makefile
	@command -v $(PYTHON) >/dev/null || { echo "make setup: $(PYTHON) not found; install Python 3.11 or pass PYTHON=..."; exit 1; }
	@echo "[setup 1/5] virtual environment $(VENV) ($(PYTHON))"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "[setup 2/5] $(TORCH_PINS)"
	@$(PY) -m pip install --quiet --disable-pip-version-check $(TORCH_PINS)
	@echo "[setup 3/5] setuptools, numpy, opencv-python, pycocotools, fvcore, pytest, pytest-xdist, onnx, onnxruntime"
	@$(PY) -m pip install --quiet --disable-pip-version-check $(PIP_PINS)
	@# xtcocotools (CrowdPose's protocol) from source: its wheel is built against an older numpy
	@$(PY) -m pip install --quiet --disable-pip-version-check --no-binary xtcocotools xtcocotools
	@echo "[setup 4/5] detectron2 (tools/install_detectron2.sh)"
	@bash tools/install_detectron2.sh $(PY)
	@echo "[setup 5/5] pip install -e . (inspose)"
	@$(PY) -m pip install --quiet --disable-pip-version-check --no-build-isolation --no-deps -e .
	@$(PY) -c "import inspose, detectron2, torch; print('[setup] ok: torch', torch.__version__, '| detectron2', detectron2.__version__, '| inspose', inspose.__file__)"
	@touch $(STAMP)

test: setup
	$(PY) -m pytest -q $(XDIST) $(PYTEST_ARGS) tests

test-fast: setup
	$(PY) -m pytest -q $(XDIST) -m "not slow" $(PYTEST_ARGS) tests

demo: setup
	$(PY) tools/quickstart.py

clean-venv:
	rm -rf $(VENV)
