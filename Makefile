# ftgate — `make help` lists the targets.
SHELL := /bin/bash
PY    ?= /usr/bin/python3
GO    ?= go
ADDR  ?= 127.0.0.1:8080
export GOFLAGS ?= -mod=mod
# go-nvml's header marks some vGPU calls deprecated; keep cgo builds quiet.
export CGO_CFLAGS ?= -O2 -g -Wno-deprecated-declarations

.PHONY: help deps build dev test test-unit test-go-unit test-trainer-unit test-integration test-fuzz test-faults bench stack-up stack-down stack-status fmt vet

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

test: deps test-unit test-fuzz ## unit tests, fuzzing (bounded), then stack up, integration tests, stack down
	@dev/run-integration

deps: ## install the Debian packages the stack and the trainer tests need
	dev/stack install

test-unit: test-go-unit test-trainer-unit ## fast tests: no stack needed

test-go-unit:
	FTGATE_STACK_ENV=/nonexistent FTGATE_REQUIRE_STACK= $(GO) test -count=1 ./...

test-trainer-unit:
	cd trainer && $(PY) -m pytest -q -rs -m "not slurm" -p no:cacheprovider tests

test-integration: ## integration tests against a running stack (dev/stack up)
	FTGATE_REQUIRE_STACK=1 $(GO) test -count=1 -p 1 -run Integration ./...
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

bench: ## benchmarks (printed figures, not asserted); most need the stack
	$(GO) test -run '^$$' -bench . -benchtime 20x ./...

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
