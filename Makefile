# synpo — every set-up step a fresh machine needs lives here.
#   make setup   create or update .venv (idempotent; a second run does nothing)
#   make test    set up, then run the whole test suite
#   make demo    set up, then run the end-to-end demo on the embedded default (local files, tiny model)

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DEMO   ?= runs/demo

.PHONY: setup test demo lint clean-demo

setup: $(VENV)/.synpo-installed

# Reinstalls only when the dependency pins change. requirements.lock pins every transitive package
# to the versions the test suite last passed with.
$(VENV)/.synpo-installed: pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -e '.[dev]' -c requirements.lock
	touch $@

test: setup
	$(PY) -m pytest tests

lint: setup
	$(VENV)/bin/ruff check platform tests jobs serve bench

demo: setup
	HF_HUB_OFFLINE=1 $(VENV)/bin/synpo toy videos --out $(DEMO)/videos --count 4 --seed 0
	HF_HUB_OFFLINE=1 $(VENV)/bin/synpo toy model --out $(DEMO)/models/tiny-vlm --kind vlm --warm-start-steps 300
	HF_HUB_OFFLINE=1 $(VENV)/bin/synpo caption --model $(DEMO)/models/tiny-vlm --video $(DEMO)/videos/toy-0000-00000.mp4

clean-demo:
	rm -rf $(DEMO)
