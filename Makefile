# Product Describer — every command a developer or CI needs. `make demo` and `make test` install
# whatever they need on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3.11
# The Lambdas deploy on python3.13, so their unit tests run on it too. On pyenv machines it is a
# version beside the global one: PYENV_VERSION finds it there, and is ignored elsewhere.
PYTHON313 ?= $(shell PYENV_VERSION=3.13 python3.13 -c 'import sys; print(sys.executable)' 2>/dev/null || echo python3.13)
VENV := .venv
BIN := $(VENV)/bin
SAM := .venv-sam/bin/sam

.PHONY: install lock test unit unit-py313 lint typecheck validate scan

# --- Virtual environments, each installed from its own lock file in locks/ (hash-checked) -----------
# .venv: the project, its dev tools, the emulator and the ML stack (locks/venv.txt). Every other venv
# .venv-NAME has locks/venv-NAME.in (what it needs) and locks/venv-NAME.txt (the lock): .venv-sam the
# SAM CLI (aws-sam-cli and ministack pin botocore exactly, to different versions), .venv-checkov the
# template scanner (it pins boto3 and others too), .venv-py313 the Lambdas' unit tests on python3.13.
# A venv runs on $(PYTHON) unless PYTHON_venv-NAME names another.
# To add one: write its .in, add it to LOCKED_VENVS, `make lock`, and depend on .venv-NAME/.installed.
LOCKED_VENVS := venv venv-sam venv-checkov venv-py313
PYTHON_venv-py313 = $(PYTHON313)

install: $(VENV)/.installed .venv-sam/.installed

# $(call install_lock,VENV,LOCK): pip from locks/pip.txt first, then LOCK, both hash-checked. The stamp
# VENV/.installed is a copy of both locks: when they did not change, nothing is installed.
define install_lock
cat locks/pip.txt $(2) | cmp -s - $(1)/.installed || { \
	$(1)/bin/pip install --quiet --require-hashes -r locks/pip.txt && \
	$(1)/bin/pip install --quiet --require-hashes -r $(2); }
endef

# The editable install of the project (no dependencies; its build backend comes from the lock) is quick.
$(VENV)/.installed: locks/pip.txt locks/venv.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(call install_lock,$(VENV),locks/venv.txt)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	cat locks/pip.txt locks/venv.txt > $@

.venv-%/.installed: locks/pip.txt locks/venv-%.txt
	test -x .venv-$*/bin/python || $(or $(PYTHON_venv-$*),$(PYTHON)) -m venv .venv-$*
	$(call install_lock,.venv-$*,locks/venv-$*.txt)
	cat locks/pip.txt locks/venv-$*.txt > $@

# `make lock` resolves every lock again after an input changed (pyproject.toml, functions/requirements.txt,
# locks/*.in), keeping every other pin; `make lock UPGRADE=1` moves every pin to the newest allowed.
# pip-compile resolves for the Python it runs on, so each venv's lock is made with that venv's Python.
# torch's CPU build is found in /opt/wheels (these machines' pip find-links; PyPI has only CUDA builds).
PIP_TOOLS_VERSION := 7.6.2
PIP_TOOLS := .cache/pip-tools
PIP_COMPILE_FLAGS = --quiet --generate-hashes --allow-unsafe --no-strip-extras --no-emit-index-url \
	--find-links /opt/wheels $(if $(UPGRADE),--upgrade)
LOCK_INPUTS_venv := --extra dev pyproject.toml locks/venv.in

$(PIP_TOOLS)/%/bin/pip-compile:
	$(or $(PYTHON_$*),$(PYTHON)) -m venv $(PIP_TOOLS)/$*
	$(PIP_TOOLS)/$*/bin/pip install --quiet pip-tools==$(PIP_TOOLS_VERSION)

lock: $(foreach venv,$(LOCKED_VENVS),$(PIP_TOOLS)/$(venv)/bin/pip-compile)
	CUSTOM_COMPILE_COMMAND="make lock" $(PIP_TOOLS)/venv/bin/pip-compile $(PIP_COMPILE_FLAGS) \
		--output-file locks/pip.txt locks/pip.in
	$(foreach venv,$(LOCKED_VENVS),CUSTOM_COMPILE_COMMAND="make lock" $(PIP_TOOLS)/$(venv)/bin/pip-compile $(PIP_COMPILE_FLAGS) \
		--output-file locks/$(venv).txt $(or $(LOCK_INPUTS_$(venv)),locks/$(venv).in) &&) true

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy functions endpoint training describer benchmarks

# The SAM template: cfn-lint, then SAM's own transform + lint (offline, no telemetry).
validate: install
	$(BIN)/cfn-lint template.yaml
	SAM_CLI_TELEMETRY=0 $(SAM) validate --lint --template-file template.yaml --region us-east-1

# Security scan of the template: every finding is fixed or skipped in the resource's Metadata with a reason.
scan: .venv-checkov/.installed
	.venv-checkov/bin/checkov --file template.yaml --framework cloudformation --compact --quiet --skip-download

unit: install
	$(BIN)/pytest -q tests/unit

# The Lambdas' unit tests (handlers, describer_rules, describer_aws, describer_steps) on python3.13, the runtime AWS runs them on.
LAMBDA_TESTS := tests/unit/pipeline tests/unit/core
unit-py313: .venv-py313/.installed
	.venv-py313/bin/pytest -q -p no:cacheprovider $(LAMBDA_TESTS)

# The integration tests (tests/integration) run the demo model on the local emulator: build it first.
test: lint typecheck validate scan demo-model unit-py313 browser
	DESCRIBER_DEMO_MODEL_DIR=$(DEMO_MODEL_DIR) $(BIN)/pytest -q tests

# The review desk's browser test (tests/integration/test_review_browser.py) drives Debian's chromium
# headless through its chromedriver: installed with apt when missing (CI runs as root; no browser download).
.PHONY: browser
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium chromium-driver; }

# The review loop (not a test): the demo model's answers that need review, corrected with the truth and
# exported as the desk does, a fine-tune from the demo model with them (--extra-pairs); last line
# `review loop: needs review P1% -> P2%, accuracy A1 -> A2` on a held-out synthetic batch.
.PHONY: review-bench
review-bench: $(VENV)/.installed demo-model
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m benchmarks.review_loop \
		--demo-model-dir $(DEMO_MODEL_DIR) --data-dir $(DEMO_DATA_DIR)

# The endpoint's benchmark (not a test): the reference path (one full BLIP-2 call per question) against
# one vision pass + batched decoding per product, in process and the pipeline's way (question groups,
# one HTTP call each), on the demo model and on the "proportional" config.
DEMO_MODEL_DIR ?= .cache/demo-model
.PHONY: bench
bench: $(VENV)/.installed demo-model
	$(BIN)/python -m benchmarks.endpoint_speedup --demo-model-dir $(DEMO_MODEL_DIR)

# The endpoint under load: C = 1, 4, 16 concurrent products over HTTP through the real
# inference.py with cross-request batching, proportional config; figures to .cache/load-bench.json
# (make cost reads them); last line `load: throughput at 16 concurrent N.Nx of 1 concurrent, p95
# latency M.Mx`. gpu-bench: the full blip2-flan-t5-xl, random weights, bf16 and 8-bit, on a CUDA GPU;
# without one it says so and exits with status 2 (docs/benchmarks.md).
.PHONY: load-bench gpu-bench
load-bench: $(VENV)/.installed
	$(BIN)/python -m benchmarks.endpoint_load

gpu-bench: $(VENV)/.installed
	$(BIN)/python -m benchmarks.endpoint_gpu

# The endpoint's serving image (endpoint/Dockerfile): the Hugging Face inference image with
# endpoint.serve as its entry point, so that requests on one instance share batches. Needs Docker and
# the base image's registry; deploy with `describer sagemaker deploy --image-uri $(SERVING_IMAGE)`.
.PHONY: serving-image
SERVING_IMAGE ?= product-describer-endpoint:latest
serving-image:
	@test -n "$(BASE_IMAGE)" || { echo "give BASE_IMAGE=<Hugging Face PyTorch inference image URI> (docs/endpoint.md)"; exit 2; }
	docker build --build-arg BASE_IMAGE=$(BASE_IMAGE) --tag $(SERVING_IMAGE) endpoint

# WriteDescription's choice (not a test): one Converse call per locale against one call for all
# locales, tokens and modelled latency on the real prompts; the last line compares them.
.PHONY: copy-bench
copy-bench: $(VENV)/.installed
	$(BIN)/python -m benchmarks.copy --locales en-US,es-ES,de-DE,fr-FR

# --- The local stack: ministack + the local model host + template.yaml deployed with the SAM CLI -----
# State, logs and emulator temp files live in .local/; `make local-down` stops every process.
.PHONY: demo local-up local-down integration local-bench
LOCAL := $(BIN)/describer local
LOCAL_BENCH := $(BIN)/python -m benchmarks

demo: install demo-model
	$(LOCAL) demo --model-dir $(DEMO_MODEL_DIR)

local-up: install demo-model
	$(LOCAL) up --model-dir $(DEMO_MODEL_DIR)

local-down:
	if [ -x $(BIN)/describer ]; then $(LOCAL) down; fi

integration: install demo-model browser
	DESCRIBER_DEMO_MODEL_DIR=$(DEMO_MODEL_DIR) $(BIN)/pytest -q -m integration tests/integration

# Faults injected at the model host (throttling, unavailable, slow replies; SageMaker and Bedrock), 40
# uploads incl. re-uploads and duplicate deliveries; last line: `chaos: U uploads, C completed, F failed,
# S stuck, D duplicate executions, V wrong versions` (exit status 1 unless F = S = D = V = 0).
.PHONY: chaos
chaos: install demo-model
	$(LOCAL_BENCH) chaos --model-dir $(DEMO_MODEL_DIR)

# Latency per upload (cold, warm) and the time for a burst of 50 uploads on the local stack.
local-bench: install demo-model
	$(LOCAL_BENCH) latency --model-dir $(DEMO_MODEL_DIR)

# A catalogue of 1,000 synthetic photos backfilled on a fresh local stack (with a warm upload timed
# during it), then backfilled again; the last lines are `backfill: 1000 objects, ...` and `rerun: N
# executions started`. `make backfill-bench COPY=batch` writes the copy through Bedrock batch jobs (the
# local model host emulates them); BATCH_FAULTS=batch-expire=0.5,batch-partial=0.2 makes jobs fail.
COPY ?= on-demand
BATCH_FAULTS ?=
.PHONY: backfill-bench
backfill-bench: install demo-model
	$(LOCAL_BENCH) backfill --model-dir $(DEMO_MODEL_DIR) --copy $(COPY) \
		$(if $(BATCH_FAULTS),--batch-faults $(BATCH_FAULTS))

# N products through a fresh local stack, every call metered and priced (describer/prices.json); the
# last line is `cost per 1000 images: $X.XX` for the template's default configuration.
.PHONY: cost
cost: install demo-model
	$(LOCAL_BENCH) cost --model-dir $(DEMO_MODEL_DIR)

# --- Training (training/, docs/training.md) ----------------------------------------------------------
# The demo model: a tiny BLIP-2 fine-tuned on a synthetic catalogue, shipped in training/demo_model/;
# this regenerates the (seeded) synthetic data and assembles the model dir from the shipped weights,
# cached in .cache/ under a key of all its inputs; an unchanged key only refreshes the endpoint code
# in code/. Retrain from scratch: `python -m training.demo_model_build --retrain [--ship]` (docs/training.md).
DEMO_DATA_DIR ?= .cache/demo-data
.PHONY: demo-model eval catalogue
demo-model: $(VENV)/.installed
	$(BIN)/python -m training.demo_model_build --out $(DEMO_MODEL_DIR) --data $(DEMO_DATA_DIR)

# Evaluates the demo model on its held-out synthetic products; the last lines are `categories: N`,
# `macro accuracy: 0.NN`, `expected calibration error: 0.0NN`, `worst attribute ECE: 0.0NN (<Category>/<Attr>)`.
eval: demo-model
	$(BIN)/describer evaluate --model $(DEMO_MODEL_DIR) --data $(DEMO_DATA_DIR)

# Rebuilds functions/describer_rules/catalogue.json from the dataset's metadata (styles/<id>.json of the
# Fashion Product Images dataset; the full 44,441 are in aerospike-examples/retail-demo, data/styles):
# `make catalogue STYLES_DIR=path/to/styles` (docs/training.md, "The catalogue").
catalogue: $(VENV)/.installed
	test -n "$(STYLES_DIR)" || { echo "usage: make catalogue STYLES_DIR=path/to/styles"; exit 2; }
	$(BIN)/describer catalogue build --styles $(STYLES_DIR)

# An upload whose key and metadata name no known category (not a test): the second round Prepare
# makes (the article type, then that category's questions) against one pass asking every category's
# questions, in process on the demo model; the last line compares the two per product.
.PHONY: category-bench
category-bench: $(VENV)/.installed demo-model
	$(BIN)/python -m benchmarks.categories --model-dir $(DEMO_MODEL_DIR) --data $(DEMO_DATA_DIR)

# Real photos (docs/training.md, "Accuracy on real photos"). real-model trains the efficientnet-lite0
# preset (frozen pretrained EfficientNet-Lite0, Q-Former, small T5) on a folder in the Kaggle layout on
# this machine's CPU, keeping blocks of ids aside for calibration; its model dir is served by
# `describer local up --model-dir`. real-eval asks it about every photo of a folder, as held out; the
# last lines are `real photos: N products, M answers` ... `review share for 98% accuracy: NN%`.
REAL_MODEL_DIR ?= .cache/real-model
.PHONY: real-model real-eval
real-model: $(VENV)/.installed
	@test -n "$(KAGGLE_DIR)" || { echo "usage: make real-model KAGGLE_DIR=DIR [MODEL_DIR=$(REAL_MODEL_DIR)]"; exit 2; }
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-$$(nproc)} $(BIN)/python -m training.real_model \
		--kaggle-dir $(KAGGLE_DIR) --model-dir $(or $(MODEL_DIR),$(REAL_MODEL_DIR))

real-eval: $(VENV)/.installed
	@test -n "$(KAGGLE_DIR)" || { echo "usage: make real-eval KAGGLE_DIR=DIR MODEL_DIR=DIR"; exit 2; }
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-$$(nproc)} $(BIN)/python -m training.real_eval \
		--kaggle-dir $(KAGGLE_DIR) --model-dir $(or $(MODEL_DIR),$(REAL_MODEL_DIR))

# Several photos per product (not a test): the demo model fine-tuned on front/back/detail views of
# synthetic products (training/views.py), then front photo alone against all three fused, held out.
.PHONY: multi-photo-bench
multi-photo-bench: $(VENV)/.installed demo-model
	OMP_NUM_THREADS=1 $(BIN)/python -m benchmarks.multi_photo --start-from $(DEMO_MODEL_DIR)
