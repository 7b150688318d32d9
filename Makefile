# keyferry — build, test and demo against the local cloud.
#
#   make demo   start the local cloud, write and read a secret in every store, stop everything
#   make test   vet, format check, and every test (contract suites against the local cloud)
#
# Tools the tests need are built once and cached outside the work tree, keyed on their inputs:
#   $(VAULT_BIN)   HashiCorp Vault dev server built from localtest/vaultdev (its own go.mod)
#   infra checks   the aws-cdk CLI and tree-sitter-bicep from npm, the Terraform google provider built from its
#                  Go module (infra/gcp/provider), the CDK app (infra/cdk, its own go.mod)

SHELL      := /bin/bash
GO         ?= go
CACHE_DIR  ?= $(HOME)/.cache/keyferry
# The cached binary is named by a hash of its inputs, so a fresh clone (new file times) reuses it and any
# change to them builds a new one.
VAULT_KEY  := $(shell cat localtest/vaultdev/go.mod localtest/vaultdev/go.sum localtest/vaultdev/main.go 2>/dev/null | sha256sum | cut -c1-12)
VAULT_BIN  ?= $(CACHE_DIR)/vault-$(VAULT_KEY)
TEST_FLAGS ?= -count=1 -timeout 30m
PKGS       ?= ./...

export KEYFERRY_VAULT_BIN := $(VAULT_BIN)
# make test installs chromium (target chromium), so the browser test must not skip.
export KEYFERRY_REQUIRE_CHROMIUM := 1
export GOFLAGS := -buildvcs=false

.PHONY: all build test demo vault moto pubsub-emulator chromium vet fmt-check lint fuzz bench clean-cache tools infra-check

all: build

build:
	$(GO) build ./...

## tools the tests need (cached, or checked where the machine provides them)
tools: vault moto pubsub-emulator chromium

# moto (AWS) and the gcloud Pub/Sub emulator come with the machine image; these targets check them and say
# what is missing rather than letting a test fail obscurely.
moto:
	@python3 -c 'import moto, moto.server' 2>/dev/null || { echo "moto is missing: install the Python package moto[server] (5.2.1) for python3"; exit 1; }

pubsub-emulator:
	@root=$$(gcloud info --format='value(installation.sdk_root)' 2>/dev/null); \
	test -x "$$root/platform/pubsub-emulator/bin/cloud-pubsub-emulator" || { echo "the gcloud Pub/Sub emulator is missing: install the gcloud component pubsub-emulator (Debian: google-cloud-cli-pubsub-emulator)"; exit 1; }; \
	command -v java >/dev/null || { echo "java is missing: the Pub/Sub emulator needs Java 17 (Debian: openjdk-17-jre-headless)"; exit 1; }

# Debian's chromium renders the inventory's HTML report in a test (core/inventory); installed once with apt.
chromium:
	@command -v chromium >/dev/null || { echo "installing Debian's chromium for the HTML report test (once)"; \
	  { apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; } \
	  || { echo "cannot install chromium: run 'apt-get install chromium' as root"; exit 1; }; }

vault: $(VAULT_BIN)

$(VAULT_BIN):
	@mkdir -p $(CACHE_DIR)
	@echo "building the Vault dev server from its Go module (first time: ~20 min, cached in $(CACHE_DIR))"
	cd localtest/vaultdev && $(GO) build -o $(VAULT_BIN).tmp . && mv $(VAULT_BIN).tmp $(VAULT_BIN)

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

lint: fmt-check vet

test: tools lint infra-check
	$(GO) test $(TEST_FLAGS) $(PKGS)

## infrastructure as code: synth/validate offline and check least privilege (fragments below)
infra-check: infra-check-cdk infra-check-bicep infra-check-gcp

## short fuzzing of the decoders and the config loader
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./core/config -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	for f in FuzzDecodeAWS FuzzDecodeEventGrid FuzzDecodePubSub; do \
		$(GO) test ./core/event -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) || exit 1; done

bench: tools
	$(GO) test ./bench/... -run '^$$' -bench . -benchtime 1x

demo: vault moto pubsub-emulator
	$(GO) run ./localtest/cmd/localcloud demo

clean-cache:
	rm -f $(CACHE_DIR)/vault-*

include infra/cdk/cdk.mk
include infra/bicep/bicep.mk
include infra/gcp/gcp.mk
