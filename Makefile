# memespread: set-up and the two main commands (see README.md).
#   make demo   creates .venv, installs memespread, runs the demo experiment (LLM agents on llama.cpp)
#   make test   creates .venv, installs memespread + test tools + the vLLM CPU build, lints, runs the tests
#   make notebook  installs JupyterLab (the `notebook` extra) and opens the analysis notebooks
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.memespread-installed
NB_STAMP := $(VENV)/.memespread-notebook
TEST_STAMP := $(VENV)/.memespread-test-extras

.PHONY: demo test lint vllm bench notebook

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[llm,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/memespread run experiments/configs/demo.toml --overwrite
	$(BIN)/memespread report runs/demo

vllm: $(STAMP)
	bash scripts/install_vllm.sh $(VENV)

# ruff over the tree; mypy over every package (the files of pyproject's [tool.mypy]).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The tests also drive the dashboard in Debian's Chromium (as root, e.g. in CI, it is
# installed when missing) and run sweeps on a local Ray.
$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[llm,dev,dashboard,ray]'
	command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		apt-get install -y -qq chromium chromium-driver >/dev/null; } || \
		echo "warning: install Debian's chromium for the dashboard tests" >&2
	touch $(TEST_STAMP)

test: vllm $(TEST_STAMP) lint
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/contagion_vs_ndlib.py --steps 40 --million

$(NB_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[llm,dev,notebook]'
	touch $(NB_STAMP)

notebook: $(NB_STAMP)
	$(BIN)/jupyter lab notebooks/
