# keyferry — build, test and demo against the local cloud.
#
#   make demo   start the local cloud, write and read a secret in every store, stop everything
#   make test   vet, format check, and every test (contract suites against the local cloud)
#
# Tools the tests need are built once and cached outside the work tree, keyed on their inputs:
#   $(VAULT_BIN)   HashiCorp Vault dev server built from localtest/vaultdev (its own go.mod)

SHELL      := /bin/bash
GO         ?= go
CACHE_DIR  ?= $(HOME)/.cache/keyferry
VAULT_KEY  := $(shell sha256sum localtest/vaultdev/go.sum 2>/dev/null | cut -c1-12)
VAULT_BIN  ?= $(CACHE_DIR)/vault-$(VAULT_KEY)
TEST_FLAGS ?= -count=1 -timeout 30m
PKGS       ?= ./...

export KEYFERRY_VAULT_BIN := $(VAULT_BIN)
export GOFLAGS := -buildvcs=false

.PHONY: all build test demo vault vet fmt-check lint fuzz bench clean-cache tools

all: build

build:
	$(GO) build ./...

## tools the tests need (cached)
tools: vault

vault: $(VAULT_BIN)

$(VAULT_BIN): localtest/vaultdev/go.mod localtest/vaultdev/go.sum localtest/vaultdev/main.go
	@mkdir -p $(CACHE_DIR)
	@echo "building the Vault dev server from its Go module (first time: ~20 min, cached in $(CACHE_DIR))"
	cd localtest/vaultdev && $(GO) build -o $(VAULT_BIN).tmp . && mv $(VAULT_BIN).tmp $(VAULT_BIN)

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

lint: fmt-check vet

test: tools lint
	$(GO) test $(TEST_FLAGS) $(PKGS)

## short fuzzing of the decoders and the config loader
fuzz:
	$(GO) test ./core/config -run '^$$' -fuzz FuzzParse -fuzztime 30s

bench: tools
	$(GO) test ./bench/... -run '^$$' -bench . -benchtime 1x

demo: tools
	$(GO) run ./cmd/keyferry demo

clean-cache:
	rm -f $(CACHE_DIR)/vault-*
