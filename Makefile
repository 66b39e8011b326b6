# initializer: build, test, demo, lint.
SHELL := /bin/bash
GO ?= go
export GOTOOLCHAIN := local
export GOFLAGS := -buildvcs=false

BIN := bin/initializer
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
TOOLS ?= $(or $(INITIALIZER_TOOLS),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/initializer-test-tools)
STATICCHECK_VERSION := v0.8.2
DEMO_OUT ?= /tmp/initializer-demo

.PHONY: build demo test unit lint bench servers servers-stop clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/initializer

# Runs the main job on a built-in example: a host_path connection over
# examples/demo/data, copied into $(DEMO_OUT).
demo: build
	@rm -rf $(DEMO_OUT)
	POLYAXON_CONNECTIONS_CATALOG="$$(sed 's#DEMO_DATA#$(CURDIR)/examples/demo/data#g' examples/demo/catalog.yaml)" \
		$(BIN) --connection demo-data --path $(DEMO_OUT) --result $(DEMO_OUT).result.json
	@echo "--- copied into $(DEMO_OUT):"; cd $(DEMO_OUT) && find . -type f | sort
	@echo "--- result: $(DEMO_OUT).result.json"

# Every test: lint, unit tests, fuzz seed corpora, and the integration tests
# against real servers, which it installs (cached) and starts, then stops.
test: lint
	bash integration/servers.sh start
	status=0; $(GO) test -count=1 -timeout 20m ./... || status=$$?; \
		bash integration/servers.sh stop; exit $$status

# Unit tests only (no servers).
unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /integration)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go') $$(git ls-files --others --exclude-standard '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@test -x $(TOOLS)/bin/staticcheck-$(STATICCHECK_VERSION) || \
		{ mkdir -p $(TOOLS)/bin && GOBIN=$(TOOLS)/bin $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) && \
		  mv $(TOOLS)/bin/staticcheck $(TOOLS)/bin/staticcheck-$(STATICCHECK_VERSION); }
	$(TOOLS)/bin/staticcheck-$(STATICCHECK_VERSION) ./...

# Side-by-side benchmarks against the reference tools (as root: they mount a
# journaled ext4 for their destinations). BENCH=store|git|sidecar picks one.
BENCH ?= $(sort $(notdir $(patsubst %/run.sh,%,$(wildcard bench/*/run.sh))))
bench:
	@for b in $(BENCH); do echo "== bench/$$b"; bash bench/$$b/run.sh || exit 1; done

servers:
	bash integration/servers.sh start

servers-stop:
	bash integration/servers.sh stop

clean:
	rm -rf bin
