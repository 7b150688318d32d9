# infra/gcp/gcp.mk — checks of the GCP Terraform (infra/gcp), included by the root Makefile:
#
#   include infra/gcp/gcp.mk
#
#   make infra-check-gcp   terraform fmt -check; the IAM scope test (infra/gcp/tfcheck); terraform validate
#                          (no init, no credentials) against the google provider built from its Go module
#
# The provider is built once from infra/gcp/provider (its own go.mod, so the root module never depends on it)
# and cached outside the work tree, keyed on that module's go.sum like the root Makefile keys Vault:
#   $(TF_PROVIDER_DIR)/terraform-provider-google   the provider binary (first build ~5 min on 2 cores)
#   $(TF_PROVIDER_DIR)/dev.tfrc                    a Terraform CLI config whose dev_overrides point at it
# The key is the only thing deciding a rebuild (no timestamps: a fresh clone must reuse the cached binary).
#
# Uses GO and CACHE_DIR from the including Makefile (defaults below when run on its own with make -f).

GO        ?= go
CACHE_DIR ?= $(HOME)/.cache/keyferry
TERRAFORM ?= terraform

# Where this fragment lives, relative to the directory make runs in (the repository root).
GCP_INFRA_DIR   := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
# Including this file must not change the including Makefile's default goal.
_kf_gcp_goal    := $(.DEFAULT_GOAL)

TF_PROVIDER_KEY := $(shell sha256sum $(GCP_INFRA_DIR)/provider/go.sum 2>/dev/null | cut -c1-12)
TF_PROVIDER_DIR ?= $(abspath $(CACHE_DIR))/terraform-provider-google-$(TF_PROVIDER_KEY)
TF_PROVIDER_BIN := $(TF_PROVIDER_DIR)/terraform-provider-google
TF_DEV_RC       := $(TF_PROVIDER_DIR)/dev.tfrc
# No checkpoint (version check) calls, no interactive prompts.
TF_ENV          := CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 TF_INPUT=0

.PHONY: infra-check-gcp infra-gcp-fmt infra-gcp-tfcheck infra-gcp-validate infra-gcp-provider infra-clean-cache-gcp

infra-check-gcp: infra-gcp-fmt infra-gcp-tfcheck infra-gcp-validate

infra-gcp-fmt:
	@command -v $(TERRAFORM) >/dev/null || { echo "terraform is missing: install Terraform 1.11 (the check uses fmt and validate only)"; exit 1; }
	$(TF_ENV) TF_CLI_CONFIG_FILE=/dev/null $(TERRAFORM) fmt -check -recursive -diff $(GCP_INFRA_DIR)

infra-gcp-tfcheck:
	$(GO) test -count=1 ./$(GCP_INFRA_DIR)/tfcheck/

infra-gcp-provider: $(TF_PROVIDER_BIN) $(TF_DEV_RC)

$(TF_PROVIDER_BIN):
	@test -n "$(TF_PROVIDER_KEY)" || { echo "$(GCP_INFRA_DIR)/provider/go.sum is missing"; exit 1; }
	@mkdir -p $(TF_PROVIDER_DIR)
	@echo "building the Terraform google provider from its Go module (first time: ~5 min, cached in $(TF_PROVIDER_DIR))"
	cd $(GCP_INFRA_DIR)/provider && $(GO) build -trimpath -ldflags='-s -w' -o $(TF_PROVIDER_BIN).tmp github.com/hashicorp/terraform-provider-google
	mv $(TF_PROVIDER_BIN).tmp $(TF_PROVIDER_BIN)

$(TF_DEV_RC):
	@mkdir -p $(TF_PROVIDER_DIR)
	@printf 'provider_installation {\n  dev_overrides {\n    "hashicorp/google" = "%s"\n  }\n  direct {}\n}\n' '$(TF_PROVIDER_DIR)' > $@.tmp
	@mv $@.tmp $@

# validate needs no init with dev_overrides; nothing is written into the work tree (TF_DATA_DIR is in the cache).
infra-gcp-validate: infra-gcp-provider
	cd $(GCP_INFRA_DIR) && $(TF_ENV) TF_CLI_CONFIG_FILE=$(TF_DEV_RC) TF_DATA_DIR=$(TF_PROVIDER_DIR)/tfdata \
		$(TERRAFORM) validate -no-color

infra-clean-cache-gcp:
	rm -rf $(abspath $(CACHE_DIR))/terraform-provider-google-*

.DEFAULT_GOAL := $(_kf_gcp_goal)
