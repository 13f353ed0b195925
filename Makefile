# lvlmu: two commands for a fresh machine.
#   make study   build the venv, run the study pipeline, build the book into _build/html
#   make test    build the venv, install Chromium if missing, and run the test suite
#   make tune    choose every method's settings on the tuning world (writes workflow/tuned.json, which the study reads)
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= full
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: study tune test install chromium clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: its CPU wheel lies on disk; any looser spec pulls a CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test]"
	$(PY) -m ipykernel install --prefix $(VENV) --name lvlmu --display-name "lvlmu (venv)" > /dev/null
	touch $@

install: $(VENV)/.installed

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
