# lepton-operator: one entry point for setup, lint, tests and the local cluster.
# `make test` on a fresh machine installs everything it needs (Debian packages,
# a Python virtualenv from pinned constraints, the cluster binaries from Go modules).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
CONSTRAINTS := requirements/constraints.txt
# The venv is rebuilt when what decides its contents changes.
VENV_STAMP := $(VENV)/.stamp-$(shell cat pyproject.toml $(CONSTRAINTS) 2>/dev/null | sha256sum | cut -c1-12)
# fortunes-min: real English sentences for MiniLM's calibration data (lepton_e2e.sentences).
# buildah, mmdebstrap, umoci, skopeo: the operator's image, which the e2e harness runs (and
# `make images` builds them all): Debian's daemonless buildah (as root), a local Debian base
# where no image registry is reachable, umoci and skopeo to unpack and check the result.
APT_PACKAGES := iproute2 openssl util-linux ca-certificates git redis-server fortunes-min \
	buildah mmdebstrap umoci skopeo
E2E := PYTHONPATH=e2e $(PY) -m lepton_e2e
# The Go builds need only the standard library, so they run with $(PYTHON), not the venv,
# and `make test` compiles them while the venv installs (see bootstrap).
PREBUILD := PYTHONPATH=e2e $(PYTHON) -m lepton_e2e.prebuild

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

.PHONY: deps
deps: system-deps $(VENV_STAMP) ## install everything the tests need (idempotent)

.PHONY: system-deps
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "apt-get install:$$missing"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi
	@command -v go >/dev/null || { echo "Go >= 1.26 is needed on PATH (the local cluster is built from Go modules)"; exit 1; }

# uv (Astral's installer, from PyPI) installs the pinned set from its cache by hard links
# and byte-compiles on both cores: a new venv in 53-63 s warm against pip's 199-350 s, one
# after the other on the same machine (pip unpacks every file of torch and the CUDA wheels
# again each time); with an empty cache its parallel downloads took 41 s here. Same
# packages, same constraints file; pip stays in the venv for `make lock`. Byte-compiled at
# install since PYTHONDONTWRITEBYTECODE is set on this machine kind: without it no
# __pycache__ is ever written and every test process compiles what it imports.
UV_VERSION := 0.13.9

$(VENV_STAMP): pyproject.toml $(CONSTRAINTS)
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q uv==$(UV_VERSION)
	$(VENV)/bin/uv pip install -q --compile-bytecode --python $(PY) -c $(CONSTRAINTS) -e '.[dev,builder]'
	touch $@

.PHONY: lock
lock: ## re-resolve the pinned Python constraints from pyproject.toml
	rm -rf /tmp/lepton-lock && $(PYTHON) -m venv /tmp/lepton-lock
	/tmp/lepton-lock/bin/pip install -q -e '.[dev,builder]'
	/tmp/lepton-lock/bin/pip freeze --exclude-editable > $(CONSTRAINTS)

# actionlint checks .github/workflows (the release workflow cannot run here); built once
# from its Go module into the cache, like the cluster binaries.
ACTIONLINT_VERSION := v1.7.12
ACTIONLINT := $(HOME)/.cache/lepton-operator/actionlint-$(ACTIONLINT_VERSION)/actionlint

$(ACTIONLINT): | system-deps
	GOBIN=$(dir $@) go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)

.PHONY: lint
lint: deps $(ACTIONLINT) ## ruff, mypy (strict), the import-layer contracts, actionlint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(PY) -m lepton_operator.api.crd --check
	$(PY) docs/reference/generate.py --check
	$(PY) docs/bench/generate.py --check
	$(ACTIONLINT)

.PHONY: unit
unit: deps ## fast tests of pure logic
	$(PY) -m pytest tests/unit

.PHONY: crds
crds: deps ## regenerate crds/ and the chart's copy from the pydantic API
	$(PY) -m lepton_operator.api.crd

.PHONY: docs
docs: deps ## regenerate docs/reference and the replay tables of docs/planner.md
	$(PY) docs/reference/generate.py
	$(PY) docs/bench/generate.py

.PHONY: cluster-bin
cluster-bin: system-deps ## build the cluster binaries from Go modules (cached by go.sum)
	$(PREBUILD) cluster

.PHONY: bootstrap
bootstrap: ## deps, cluster binaries and Argo CD side by side: Go compiles while the venv installs
	$(MAKE) --no-print-directory -j3 deps cluster-bin argocd-bin

.PHONY: cluster-up
cluster-up: deps cluster-bin ## start the local cluster; prints the KUBECONFIG to export
	$(E2E) up

.PHONY: argocd-bin
argocd-bin: system-deps ## build Argo CD (controller, repo-server) from Go modules (cached; cold 9 to 20 min here)
	$(PREBUILD) argocd

.PHONY: argocd-up
argocd-up: deps cluster-bin argocd-bin ## start the local cluster (if needed) and real Argo CD against it
	$(E2E) argocd-up

.PHONY: cluster-down
cluster-down: deps ## stop the local cluster and remove its state
	$(E2E) down

# The operator's and the activator's images, which the e2e harness runs (each rebuilt only
# when what its Dockerfile copies changed). `make test` builds them beside lint, so the
# e2e tests do not wait for them.
.PHONY: e2e-images
e2e-images: deps ## the operator's and activator's images for the e2e harness (build/images; rebuilt when their sources change)
	$(E2E).shipped_images

.PHONY: test
# Argo CD is built in the background at the lowest CPU priority (only the GitOps tests
# need it, and they wait for it): cold, the cluster's build has both cores, lint and the
# images run beside it once the venv is in, and Argo CD's build takes what is left idle.
test: system-deps ## everything CI runs: lint, unit, integration and e2e on the real cluster (prints the 30 slowest)
	$(PREBUILD) --background argocd
	$(MAKE) --no-print-directory -j3 cluster-bin lint-and-images
	@rc=0; $(PY) -m pytest -n 3 --dist loadgroup --durations=30 || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that proves nothing, so it fails"; fi; \
	exit $$rc

# Lint and the images side by side (on the jobs the outer make leaves: -j3 less the
# cluster's build), each one's output in one piece; the cluster's build prints as it goes.
.PHONY: lint-and-images
lint-and-images:
	$(MAKE) --no-print-directory --output-sync=target lint e2e-images

.PHONY: demo
# The images build beside the cluster's Go build once the venv is in (cold: the Debian
# base and both images, about 4 minutes, hidden behind the Go build).
demo: ## the product end to end on the local cluster: build, serve, a load ramp, plots (about 5 min warm)
	$(MAKE) --no-print-directory -j3 cluster-bin e2e-images
	$(E2E) demo --out build/demo $(DEMO_ARGS)

.PHONY: bench-builder
bench-builder: deps ## each CPU variant's speedup over fp32 and accuracy, digits and MiniLM, one run (~40 min: trains MiniLM 60 s and 600 s)
	PYTHONPATH=e2e:runtimes/builder $(PY) runtimes/builder/bench.py --out docs/bench/builder.json
	$(PY) docs/bench/builder_table.py

.PHONY: gpu-check
gpu-check: deps ## the builder's GPU variants of digits and MiniLM profiled at batch 1-128 on this machine's GPU; DRY_RUN=1: on the CPU, tiny budgets (docs/builder.md)
	PYTHONPATH=e2e:runtimes/builder $(PY) runtimes/builder/gpu_check.py --pack .gpu-check
	PYTHONPATH=e2e:runtimes/builder $(PY) runtimes/builder/gpu_check.py --sources .gpu-check \
		$(if $(DRY_RUN),--dry-run --out build/gpu-check-dry-run.json,--out docs/bench/gpu.json)

.PHONY: bench-search
bench-search: deps ## the serving search on a real Triton: every configuration tried, default vs chosen
	PYTHONPATH=e2e:runtimes/builder $(PY) runtimes/builder/search_bench.py --out bench-search.json

REPLAY_PROFILES := --profiles e2e/traces/minilm-cpu-standard.json --profiles e2e/traces/minilm-gpu-l4.derived.json

.PHONY: bench-replay
bench-replay: deps ## the planner against its peers and the offline optimum, shipped traces and generated families
	$(PY) -m lepton_operator.bench replay --all-traces --trace-dir e2e/traces $(REPLAY_PROFILES) \
	  --pools e2e/traces/pools.yaml --slo-ms 100 --out-dir docs/bench
	$(PY) docs/bench/generate.py

.PHONY: bench-serving
bench-serving: deps ## Triton's serving overhead over the raw variant (MiniLM int8, batch 1 and 8), one run
	PYTHONPATH=e2e:runtimes/builder $(PY) runtimes/triton/bench.py --out bench-serving.json

.PHONY: bench-scale
bench-scale: deps cluster-bin ## 100 then 1,000 LeptonModels on the real apiserver: latency, memory, API req/s
	$(E2E).scale_bench --sizes $(or $(SIZES),100,1000) --out docs/bench/scale.json

# Image builds (hack/images.sh). `make test` builds only the operator's and the
# activator's images, which the e2e harness runs (lepton_e2e.shipped_images, rebuilt when
# their sources change); this builds every image asked for.
IMAGES ?= operator builder activator triton

.PHONY: images
images: deps ## OCI archives of the images in build/images (IMAGES=operator builder activator triton, BASE=...; see docs/images.md)
	IMAGES="$(IMAGES)" hack/images.sh

.PHONY: clean
clean: ## remove the virtualenv (the cluster binaries stay cached in ~/.cache/lepton-operator)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
