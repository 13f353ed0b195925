# lvlmu: two commands for a fresh machine.
#   make study   build the venv, run the study pipeline, build the book into _build/html
#   make test    build the venv, install Chromium if missing, and run the test suite
#   make test-qwen  build the optional environment with torchvision (.venv-qwen) and run the Qwen2-VL and Qwen2.5-VL tests
#   make tune    choose every method's settings on the tuning world (writes workflow/tuned.json, which the study reads)
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= full
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: study tune test test-qwen install chromium clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: its CPU wheel lies on disk; any looser spec pulls a CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test]"
	$(PY) -m ipykernel install --prefix $(VENV) --name lvlmu --display-name "lvlmu (venv)" > /dev/null
	touch $@

install: $(VENV)/.installed

# The optional environment for Qwen2-VL and Qwen2.5-VL, whose processors need torchvision. These two releases import
# together on a CPU (a CUDA build that runs there: about 5.5 GB with its dependencies); the main venv stays as it is.
QWEN_VENV ?= .venv-qwen
$(QWEN_VENV)/.installed: pyproject.toml
	python3 -m venv $(QWEN_VENV)
	$(QWEN_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(QWEN_VENV)/bin/python -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(QWEN_VENV)/bin/python -m pip install --quiet -e ".[test]"
	touch $@

test-qwen: $(QWEN_VENV)/.installed
	$(QWEN_VENV)/bin/python -m pytest -m qwen tests/test_checkpoints.py

study: $(VENV)/.installed
	$(PY) -m lvlmu study --profile $(PROFILE)

tune: $(VENV)/.installed
	$(PY) -m lvlmu study --tune --profile $(PROFILE)

# The book test opens the built pages in headless Chromium (Debian's package).
chromium:
	@command -v chromium > /dev/null || { [ "$$(id -u)" = 0 ] || SUDO=sudo; $$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium > /dev/null; }

test: $(VENV)/.installed chromium
	$(PY) -m pytest

clean:
	rm -rf _build book/notebooks artifacts
