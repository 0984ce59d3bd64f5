# Product Describer — every command a developer or CI needs. `make demo` and `make test` install
# whatever they need on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
SAM_VENV := .venv-sam
BIN := $(VENV)/bin
SAM := $(SAM_VENV)/bin/sam
# aws-sam-cli pins boto3 exactly and so does ministack, to different versions: SAM gets its own venv.
SAM_CLI_VERSION := 1.170.0
# checkov pins boto3 and others too: its own venv as well.
CHECKOV_VENV := .venv-checkov
CHECKOV_VERSION := 3.3.30

.PHONY: install test unit lint typecheck validate scan

install: $(VENV)/.installed $(SAM_VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

$(SAM_VENV)/.installed:
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet aws-sam-cli==$(SAM_CLI_VERSION)
	touch $@

$(CHECKOV_VENV)/.installed:
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet checkov==$(CHECKOV_VERSION)
	touch $@

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy functions training describer

# The SAM template: cfn-lint, then SAM's own transform + lint (offline, no telemetry).
validate: install
	$(BIN)/cfn-lint template.yaml
	SAM_CLI_TELEMETRY=0 $(SAM) validate --lint --template-file template.yaml --region us-east-1

# Security scan of the template: every finding is fixed or skipped in the resource's Metadata with a reason.
scan: $(CHECKOV_VENV)/.installed
	$(CHECKOV_VENV)/bin/checkov --file template.yaml --framework cloudformation --compact --quiet --skip-download

unit: install
	$(BIN)/pytest -q tests/unit

# The integration tests (tests/integration) run the demo model on the local emulator: build it first.
test: lint typecheck validate scan demo-model
	DESCRIBER_DEMO_MODEL_DIR=$(DEMO_MODEL_DIR) $(BIN)/pytest -q tests

# The endpoint's benchmark (not a test): the reference path (one full BLIP-2 call per question) against
# one vision pass + batched decoding per product, in process and the pipeline's way (question groups,
# one HTTP call each), on the demo model and on the "proportional" config.
DEMO_MODEL_DIR ?= .cache/demo-model
.PHONY: bench
bench: $(VENV)/.installed demo-model
	$(BIN)/python -m training.serving.bench --demo-model-dir $(DEMO_MODEL_DIR)

# WriteDescription's choice (not a test): one Converse call per locale against one call for all
# locales, tokens and modelled latency on the real prompts; the last line compares them.
.PHONY: copy-bench
copy-bench: $(VENV)/.installed
	$(BIN)/python -m describer.local.copy_bench --locales en-US,es-ES,de-DE,fr-FR

# --- The local stack: ministack + the local model host + template.yaml deployed with the SAM CLI -----
# State, logs and emulator temp files live in .local/; `make local-down` stops every process.
.PHONY: demo local-up local-down integration local-bench
LOCAL := $(BIN)/describer local

demo: install demo-model
	$(LOCAL) demo --model-dir $(DEMO_MODEL_DIR)

local-up: install demo-model
	$(LOCAL) up --model-dir $(DEMO_MODEL_DIR)

local-down:
	if [ -x $(BIN)/describer ]; then $(LOCAL) down; fi

integration: install demo-model
	DESCRIBER_DEMO_MODEL_DIR=$(DEMO_MODEL_DIR) $(BIN)/pytest -q -m integration tests/integration

# Faults injected at the model host (throttling, unavailable, slow replies; SageMaker and Bedrock), 40
# uploads incl. re-uploads and duplicate deliveries; last line: `chaos: U uploads, C completed, F failed,
# S stuck, D duplicate executions, V wrong versions` (exit status 1 unless F = S = D = V = 0).
.PHONY: chaos
chaos: install demo-model
	$(LOCAL) chaos --model-dir $(DEMO_MODEL_DIR)

# Latency per upload (cold, warm) and the time for a burst of 50 uploads on the local stack.
local-bench: install demo-model
	$(LOCAL) bench --model-dir $(DEMO_MODEL_DIR)

# A catalogue of 1,000 synthetic photos backfilled on a fresh local stack (with a warm upload timed
# during it), then backfilled again; the last lines are `backfill: 1000 objects, ...` and `rerun: N
# executions started`.
.PHONY: backfill-bench
backfill-bench: install demo-model
	$(LOCAL) backfill-bench --model-dir $(DEMO_MODEL_DIR)

# N products through a fresh local stack, every call metered and priced (describer/prices.json); the
# last line is `cost per 1000 images: $X.XX` for the template's default configuration.
.PHONY: cost
cost: install demo-model
	$(LOCAL) cost --model-dir $(DEMO_MODEL_DIR)

# --- Training (training/, docs/training.md) ----------------------------------------------------------
# The demo model: a tiny BLIP-2 fine-tuned on a synthetic catalogue, shipped in training/demo_model/;
# this regenerates the (seeded) synthetic data and assembles the model dir from the shipped weights,
# cached in .cache/ under a key of all its inputs; an unchanged key only refreshes the endpoint code
# in code/. Retrain from scratch: `python -m training.demo --retrain [--ship]` (docs/training.md).
DEMO_DATA_DIR ?= .cache/demo-data
.PHONY: demo-model eval catalogue
demo-model: $(VENV)/.installed
	$(BIN)/python -m training.demo --out $(DEMO_MODEL_DIR) --data $(DEMO_DATA_DIR)

# Evaluates the demo model on its held-out synthetic products; the last two lines are
# `macro accuracy: 0.NN` and `expected calibration error: 0.0NN`.
eval: demo-model
	$(BIN)/describer evaluate --model $(DEMO_MODEL_DIR) --data $(DEMO_DATA_DIR)

# Regenerates functions/describer_core/catalogue.json: derived (support >= 20) from 10,284 synthetic
# Shirts/Tshirts drawn with the real Kaggle value frequencies (metadata only, no images).
catalogue: $(VENV)/.installed
	$(BIN)/describer dataset synth --out .cache/catalogue-source --products 10284 --no-images
	$(BIN)/describer dataset catalogue --kaggle-dir .cache/catalogue-source --min-support 20 \
		--out functions/describer_core/catalogue.json \
		--source "describer dataset catalogue (make catalogue): 10,284 synthetic Shirts/Tshirts with the real Kaggle value frequencies"
