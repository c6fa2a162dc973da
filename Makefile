# One entry point for every task. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export UV_PYTHON ?= python3
export UV_PYTHON_DOWNLOADS ?= never
UV ?= $(shell command -v uv 2>/dev/null || echo .venv-tools/bin/uv)
RUN := $(UV) run --frozen
PROTO_OUT := libs/hellolb/src
SCENARIO ?= headless
CLUSTER ?= grpc-lb-lab

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z][a-z0-9-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

.venv-tools/bin/uv:
	python3 -m venv .venv-tools
	.venv-tools/bin/pip install --quiet "uv==0.13.9"

.PHONY: setup
setup: $(UV) ## Create .venv with every package and tool the tests need
	$(UV) sync --frozen --all-packages
	$(MAKE) gen

.PHONY: gen
gen: ## Generate the Python protocol code (with .pyi) from protos/
	$(RUN) --no-sync python -m grpc_tools.protoc -Iprotos \
	  --python_out=$(PROTO_OUT) --pyi_out=$(PROTO_OUT) --grpc_python_out=$(PROTO_OUT) \
	  protos/hellolb/v1/hello.proto

.PHONY: scenarios
scenarios: setup ## Write k8s/scenarios.json (names, meshed ones) from the lab's catalogue, for the Tiltfile
	$(RUN) python tests/scenario_file.py

.PHONY: test
test: setup ## Run the whole test suite
	$(RUN) pytest

.PHONY: lint
lint: setup ## ruff, mypy and hadolint
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy
	$(RUN) hadolint services/server/Dockerfile services/client/Dockerfile lab/Dockerfile \
	  containers/standin-base.Dockerfile

.PHONY: fmt
fmt: setup ## Format the code
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

.PHONY: server
server: setup ## Run one server on port 50051
	$(RUN) python -m hello_server

.PHONY: client
client: setup ## Run one client against localhost:50051
	$(RUN) python -m hello_client

.PHONY: bench
bench: setup ## Client overhead against a bare grpc.aio loop, on loopback
	$(RUN) python -m hellolb_lab.clientbench

.PHONY: stress
stress: setup ## SIGTERM servers under load, a core kept busy; lost calls (SIGTERMS=100)
	$(RUN) pytest services/client/tests/test_sigterm_stress.py -q -s -p no:cacheprovider \
	  --sigterms=$(or $(SIGTERMS),100) --busy-cores=1 --timeout=1800

## Containers (needs podman or docker; see docs/development.md)

.PHONY: images
images: ## Build hellolb-server, hellolb-client and hellolb-lab with podman (or docker)
	containers/images.sh

.PHONY: containers
containers: setup images ## The images run as the manifests say, the live update, the lab image (minutes)
	CONTAINER_TESTS=1 $(RUN) pytest tests/containers -s -p no:cacheprovider --timeout=1800

## Kubernetes (needs docker, kind, kubectl, skaffold; see docs/cluster.md)

.PHONY: kind-up
kind-up: ## Create the local Kind cluster
	kind create cluster --name $(CLUSTER) --config k8s/kind/cluster.yaml

.PHONY: kind-down
kind-down: ## Delete the local Kind cluster
	kind delete cluster --name $(CLUSTER)

# `tilt down` reads the Tiltfile again with only the arguments after `--`, so
# it needs the scenario again; namespaces stay unless asked.
.PHONY: tilt-up
tilt-up: ## Tilt dev loop for SCENARIO (default headless)
	tilt up -- --scenario=$(SCENARIO)

.PHONY: tilt-down
tilt-down: ## Remove what tilt-up deployed for SCENARIO, its namespace included
	tilt down --delete-namespaces -- --scenario=$(SCENARIO)

# The slow pod runs the image the scenario's servers run: Skaffold and Tilt
# deploy theirs under a tag of their own, which a plain `kubectl apply -k`
# would not name.
# A running client in these scenarios never sees the slow pod: it resolves its
# servers again only when a connection closes (grpc/grpc-java#1463,
# grpc/grpc#12295), and clusterip's one connection stays where it is. The
# catalogue's scenarios that never reach a new server (tests/test_uneven_target.py).
UNEVEN_NEEDS_RESTART := clusterip headless
.PHONY: uneven-up
uneven-up: ## Add one 10x slower server pod (k8s/uneven/SCENARIO) behind SCENARIO's Service
	image=$$(kubectl get deploy/server -n grpc-lb-$(SCENARIO) \
	  -o jsonpath='{.spec.template.spec.containers[?(@.name=="server")].image}') && \
	kubectl kustomize k8s/uneven/$(SCENARIO) \
	  | kubectl set image --local -f - server="$$image" -o yaml | kubectl apply -f -
	@if [[ " $(UNEVEN_NEEDS_RESTART) " == *" $(SCENARIO) "* ]]; then \
	  echo "uneven-up: the running client of $(SCENARIO) resolves its servers only when a connection"; \
	  echo "closes, so the slow pod gets no call until the client restarts:"; \
	  echo "  kubectl rollout restart deploy/client -n grpc-lb-$(SCENARIO)"; \
	fi

.PHONY: uneven-down
uneven-down: ## Remove the slow server pod from SCENARIO
	kubectl delete -k k8s/uneven/$(SCENARIO) --ignore-not-found

# The check, its Skaffold deploy and the Linkerd hook use the kubectl on your
# PATH, checked first against the cluster's version; not through `uv run`, which
# would put the .venv's kubectl (for the offline tests, newer than the node) first.
.PHONY: e2e
e2e: setup ## End-to-end check of SCENARIO on a real Kind cluster (CLIENT_MODE=streams: streams)
	bash k8s/kubectl-skew.sh $(if $(CONTEXT),--context $(CONTEXT))
	.venv/bin/hellolb-lab e2e --scenario $(SCENARIO) $(if $(CONTEXT),--context $(CONTEXT)) \
	  $(if $(CLIENT_MODE),--client-mode $(CLIENT_MODE)) $(LAB_ARGS)

.PHONY: canary-shift
canary-shift: ## canary scenario: send WEIGHT percent of calls (0-100) to the canary; 0 rolls back
	bash k8s/canary/canary-weight.sh $(if $(CONTEXT),--context $(CONTEXT)) $(WEIGHT)

.PHONY: k8s-check
k8s-check: setup ## Offline checks of manifests, skaffold.yaml, Tiltfile, Envoy configs and CI workflows
	$(RUN) pytest tests/test_k8s_manifests.py tests/test_envoy_configs.py tests/test_skaffold.py \
	  tests/test_tiltfile.py tests/test_ensure_linkerd.py lab/tests/test_e2e.py lab/tests/test_catalogue.py \
	  tests/test_namespaces.py tests/test_envoy_resilience.py tests/test_linkerd_logs.py \
	  tests/test_doc_commands.py tests/test_doc_jq.py tests/test_xds_manifests.py \
	  tests/test_uneven_manifests.py tests/test_crd_schemas.py tests/test_workflows.py \
	  tests/test_doc_facts.py tests/test_xds_image.py tests/test_xds_bootstrap.py \
	  tests/test_kubectl_skew.py tests/test_uneven_target.py tests/test_envoy_deprecated.py \
	  tests/test_kind_config.py

## Lab (one machine, no cluster)

.PHONY: lab
lab: setup ## Reproduce SCENARIO on this machine
	$(RUN) hellolb-lab run $(SCENARIO) $(LAB_ARGS)

.PHONY: tour
tour: setup ## Every scenario in a row, then a comparison table
	$(RUN) hellolb-lab tour $(LAB_ARGS)

.PHONY: lab-bench
lab-bench: setup ## Measure balance, time to new servers and latency per scenario; xDS push time
	$(RUN) hellolb-lab bench $(LAB_ARGS)
	$(RUN) python -m hellolb_lab.xdsbench --samples 10

.PHONY: hop-bench
hop-bench: setup ## Where the Envoy hop's time goes: the shipped config less one setting at a time, bare, direct
	$(RUN) python -m hellolb_lab.hopbench $(LAB_ARGS)

.PHONY: uneven
uneven: setup ## One server of three slow, then failing: every balancer side by side, one table each
	$(RUN) hellolb-lab uneven $(LAB_ARGS)

.PHONY: watch
watch: setup ## Read client logs from stdin: kubectl logs -f -l app=client -c client -n grpc-lb-X | make watch SCENARIO=X
	$(RUN) hellolb-lab watch --scenario $(SCENARIO) $(LAB_ARGS)
