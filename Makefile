# ftgate — `make help` lists the targets.
SHELL := /bin/bash
# The trainer's venv, created by `make deps` (dev/stack install) under the state directory.
STACK_DIR ?= $(or $(FTGATE_STACK_DIR),$(CURDIR)/.dev)
PY    ?= $(STACK_DIR)/venv/bin/python
GO    ?= go
ADDR  ?= 127.0.0.1:8080
export GOFLAGS ?= -mod=mod
# go-nvml's header marks some vGPU calls deprecated; keep cgo builds quiet.
export CGO_CFLAGS ?= -O2 -g -Wno-deprecated-declarations

.PHONY: help deps build dev test test-unit test-go-unit test-trainer-unit test-trainer-deps test-integration bench bench-trainer stack-up stack-down stack-status fmt vet

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-20s %s\n", $$1, $$2}'

build: ## build bin/gateway and bin/ftctl
	$(GO) build -o bin/gateway ./cmd/gateway
	$(GO) build -o bin/ftctl ./cmd/ftctl

dev: build ## start the local stack and run the gateway on 127.0.0.1:8080 (Ctrl-C stops the gateway)
	dev/stack up
	@echo
	@echo "gateway on http://$(ADDR) — in another shell:"
	@echo "  curl http://$(ADDR)/health"
	@echo "  export FTCTL_SERVER=http://$(ADDR)"
	@echo "  bin/ftctl auth login                             # alice / password"
	@echo "  bin/ftctl submit -f examples/sft-tiny.yaml --watch"
	@echo "  dev/stack down                                   # stop the stack"
	@echo
	bin/gateway serve --config .dev/gateway.yaml

test: deps test-unit ## unit tests, then stack up, integration tests, stack down
	@dev/run-integration

deps: ## install the Debian packages the stack needs and the trainer's venv (.dev/venv)
	dev/stack install

test-unit: test-go-unit test-trainer-unit ## fast tests: no stack needed

test-go-unit:
	FTGATE_STACK_ENV=/nonexistent FTGATE_REQUIRE_STACK= $(GO) test -count=1 ./...

# Fails (never skips) when a required trainer dependency does not import.
test-trainer-deps:
	@$(PY) -c 'import torch, transformers, peft, safetensors, tokenizers, tensorboard, numpy, pytest; print("trainer deps: torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__)' \
		|| { echo "trainer dependencies do not import with $(PY): run make deps" >&2; exit 1; }

test-trainer-unit: test-trainer-deps ## trainer tests that need no stack (HF + 2-rank gloo included)
	cd trainer && $(PY) -m pytest -q -rs -m "not slurm" -p no:cacheprovider tests

test-integration: ## integration tests against a running stack (dev/stack up)
	FTGATE_REQUIRE_STACK=1 $(GO) test -count=1 -p 1 -run Integration ./...
	cd trainer && FTGATE_REQUIRE_STACK=1 $(PY) -m pytest -q -rs -m slurm -p no:cacheprovider tests

bench: ## benchmarks (printed figures, not asserted); most need the stack
	$(GO) test -run '^$$' -bench . -benchtime 20x ./...

bench-trainer: ## trainer figures: steps/s vs a bare PyTorch loop, checkpoint save/load, 1 vs 2 gloo ranks
	cd trainer && $(PY) bench.py

stack-up: ## start the local stack (idempotent)
	dev/stack up
stack-down: ## stop the local stack's processes
	dev/stack down
stack-status: ## show the stack's processes
	dev/stack status

fmt: ## gofmt
	gofmt -w $$(git ls-files '*.go')
vet: ## go vet
	$(GO) vet ./...
