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

.PHONY: help deps build dev test test-unit test-go-unit test-trainer-unit test-trainer-deps test-integration test-fuzz test-faults bench bench-trainer stack-up stack-down stack-status fmt vet web-deps web-build web-test
.PHONY: test-mutation test-mutation-diff

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-20s %s\n", $$1, $$2}'

.PHONY: dist
# Release stamping: `make dist VERSION=v0.2.0`; untagged builds are "dev" (ftctl then
# skips the gateway's minimum-version check) but always carry their commit.
VERSION ?= $(shell git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X github.com/ftgate/ftgate/internal/version.Version=$(VERSION) -X github.com/ftgate/ftgate/internal/version.Commit=$(COMMIT)
# ftctl's release targets (GOOS/GOARCH); the gateway and ftgate-gpustat ship for linux/amd64.
FTCTL_PLATFORMS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64

build: ## build bin/gateway, bin/ftctl (static, no cgo) and bin/ftgate-gpustat (cgo, NVML)
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/gateway ./cmd/gateway
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o bin/ftctl ./cmd/ftctl
	CGO_ENABLED=1 $(GO) build -ldflags '$(LDFLAGS)' -o bin/ftgate-gpustat ./cmd/ftgate-gpustat

dist: ## release files in dist/: static ftctl for linux+darwin x amd64+arm64, gateway and ftgate-gpustat for linux/amd64, SHA256SUMS
	rm -rf dist && mkdir -p dist
	set -e; for p in $(FTCTL_PLATFORMS); do \
	  os=$${p%/*}; arch=$${p#*/}; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '-s -w $(LDFLAGS)' -o dist/ftctl-$$os-$$arch ./cmd/ftctl; \
	done
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags '-s -w $(LDFLAGS)' -o dist/gateway-linux-amd64 ./cmd/gateway
	@# go-nvml needs cgo: build this one on a linux/amd64 host (or set CC to a cross compiler).
	CGO_ENABLED=1 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags '-s -w $(LDFLAGS)' -o dist/ftgate-gpustat-linux-amd64 ./cmd/ftgate-gpustat
	cd dist && sha256sum ftctl-* gateway-* ftgate-gpustat-* > SHA256SUMS
	@ls -l dist

dev: build ## start the local stack and run the gateway on 127.0.0.1:8080 (Ctrl-C stops the gateway)
	dev/stack up
	@echo
	@echo "gateway on http://$(ADDR) — in another shell:"
	@echo "  dashboard: http://$(ADDR)/  (log in as alice / password)"
	@echo "  curl http://$(ADDR)/health"
	@echo "  export FTCTL_SERVER=http://$(ADDR)"
	@echo "  bin/ftctl auth login                             # alice / password"
	@echo "  bin/ftctl submit -f examples/sft-tiny.yaml --watch"
	@echo "  dev/stack down                                   # stop the stack"
	@echo
	bin/gateway serve --config .dev/gateway.yaml

test: deps test-unit test-fuzz ## unit tests, fuzzing (bounded), then stack up, integration tests, stack down; mutation tests of the changed code
	@dev/run-integration
	@$(MAKE) --no-print-directory test-mutation-diff

deps: ## install the Debian packages the stack needs and the trainer's venv (.dev/venv)
	dev/stack install

test-unit: test-go-unit test-trainer-unit web-test ## fast tests: no stack needed

test-go-unit:
	FTGATE_STACK_ENV=/nonexistent FTGATE_REQUIRE_STACK= $(GO) test -count=1 ./...

# Fails (never skips) when a required trainer dependency does not import.
test-trainer-deps:
	@$(PY) -c 'import torch, transformers, peft, safetensors, tokenizers, tensorboard, numpy, pytest; print("trainer deps: torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__)' \
		|| { echo "trainer dependencies do not import with $(PY): run make deps" >&2; exit 1; }

test-trainer-unit: test-trainer-deps ## trainer tests that need no stack (HF + 2-rank gloo included)
	cd trainer && $(PY) -m pytest -q -rs -m "not slurm" -p no:cacheprovider tests

web-deps: web/node_modules/.package-lock.json ## install the dashboard's npm packages (web/package-lock.json)
web/node_modules/.package-lock.json: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	@touch $@

web-build: web-deps ## rebuild the dashboard into internal/web/dist (commit it; go build embeds it)
	cd web && npm run --silent build

web-test: web-deps ## dashboard: types from openapi.json + type check, unit tests, committed bundle is fresh
	cd web && npm run --silent typecheck && npm run --silent test && npm run --silent check

test-integration: web-deps ## integration tests against a running stack (dev/stack up)
	FTGATE_REQUIRE_STACK=1 $(GO) test -count=1 -p 1 -timeout 40m -run Integration ./...
	cd trainer && FTGATE_REQUIRE_STACK=1 $(PY) -m pytest -q -rs -m slurm -p no:cacheprovider tests

FUZZTIME ?= 5s
# package:target pairs; go test fuzzes one target per run.
FUZZ_TARGETS = ./internal/job:FuzzDecodeSpec ./internal/slurm:FuzzParseSqueue ./internal/slurm:FuzzParseSacct ./internal/slurm:FuzzParseCapacity
test-fuzz: ## run each fuzz target for FUZZTIME (default 5s): spec decoding, squeue/sacct/scontrol parsers
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t#*:} ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME) "$${t%%:*}"; \
	done

test-faults: ## fault suite against the running stack: kills the gateway, LISTEN, slurmctld, postgres, sshd (restores them); prints a table
	set -o pipefail; FTGATE_REQUIRE_STACK=1 FTGATE_FAULTS=$${FTGATE_FAULTS:-all} $(GO) test -count=1 -timeout 30m -run '^TestFaults$$' -v ./cmd/gateway/ 2>&1 | grep -v '^{"time"'
test-mutation: ## mutation testing (gremlins, mutmut) of the safety-critical packages: score per package, fails below docs/testing.md
	PY=$(PY) dev/mutation

test-mutation-diff: ## test-mutation of the code changed since the base recorded in docs/testing.md (what CI runs)
	PY=$(PY) dev/mutation diff

BENCH_TABLE ?= $(CURDIR)/.bench/table.jsonl
bench: ## benchmarks (printed figures, not asserted; most need the stack), then one table of figures, references and ratios
	@mkdir -p $(dir $(BENCH_TABLE)) && rm -f $(BENCH_TABLE)
	FTGATE_BENCH_TABLE=$(BENCH_TABLE) $(GO) test -run '^$$' -bench . -benchtime 20x -p 1 ./...; \
	  rc=$$?; $(GO) run ./internal/benchtable/print $(BENCH_TABLE); exit $$rc

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
