# infra/cdk/cdk.mk — the AWS CDK app's checks. The root Makefile includes this fragment:
#
#   include infra/cdk/cdk.mk
#
#   make infra-check-cdk   build the Lambda bootstrap and the CDK app, `cdk synth` the example keyferry.yaml
#                          offline, cfn-lint the template, run the infra/cdk module's Go tests (least privilege,
#                          grants = the code's AWS operations)
#
# The aws-cdk CLI is installed from npm once, into $(CACHE_DIR), keyed on its version. The CDK app is its own Go
# module (infra/cdk/go.mod), so keyferry's main module never depends on awscdk.

GO        ?= go
CACHE_DIR ?= $(HOME)/.cache/keyferry

# Wherever the include sits, it must not change the including Makefile's default goal (restored at the end).
cdk_saved_default_goal := $(.DEFAULT_GOAL)

CDK_DIR          := infra/cdk
CDK_BUILD        := $(CDK_DIR)/build
CDK_CLI_VERSION  := 2.1148.1
CDK_CLI_DIR      := $(CACHE_DIR)/aws-cdk-$(CDK_CLI_VERSION)
CDK_CLI          := $(CDK_CLI_DIR)/node_modules/.bin/cdk
CDK_STACK        ?= Keyferry
CDK_OUT          := build/cdk.out
CDK_TEMPLATE     := $(CDK_OUT)/$(CDK_STACK).template.json
CFN_LINT         ?= cfn-lint
# W3005 (DependsOn already implied by Ref/GetAtt) is how the CDK writes templates; every other warning fails.
CFN_LINT_IGNORE  := W3005
# Context for the example configuration: a fixed account and region and made-up identities, so that the
# synth needs no credentials and no network.
CDK_TEST_CONTEXT := -c config=testdata/keyferry.yaml -c stackName=$(CDK_STACK) \
	-c account=123456789012 -c region=eu-west-1 \
	-c azurePrincipalId=aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee -c azureAudience=api://aws-federation \
	-c gcpServiceAccountId=112233445566778899001
# The CLI must not look for credentials, notices or newer versions: the synth runs offline.
CDK_ENV := CDK_DISABLE_VERSION_CHECK=1 AWS_EC2_METADATA_DISABLED=true CDK_DISABLE_CLI_TELEMETRY=true \
	AWS_ACCESS_KEY_ID= AWS_SECRET_ACCESS_KEY= AWS_PROFILE= AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null

.PHONY: infra-check-cdk infra-cdk-cli infra-cdk-bootstrap infra-cdk-app infra-cdk-synth infra-cdk-lint infra-cdk-test infra-cdk-clean

infra-check-cdk: infra-cdk-synth infra-cdk-lint infra-cdk-test
	@echo "infra-check-cdk: ok"

infra-cdk-cli: $(CDK_CLI)

# npm latest (3.x) rejects cloud assemblies of schema 54; 2.1148.1 reads them.
$(CDK_CLI):
	@mkdir -p $(CACHE_DIR)
	@rm -rf $(CDK_CLI_DIR).tmp
	@echo "installing aws-cdk@$(CDK_CLI_VERSION) into $(CDK_CLI_DIR) (once)"
	npm install --prefix $(CDK_CLI_DIR).tmp --no-audit --no-fund --no-save --loglevel=error aws-cdk@$(CDK_CLI_VERSION)
	@test -x $(CDK_CLI_DIR).tmp/node_modules/.bin/cdk
	@rm -rf $(CDK_CLI_DIR) && mv $(CDK_CLI_DIR).tmp $(CDK_CLI_DIR)

# The function's code: the CDK asset is the directory holding `bootstrap`. Go's build cache makes a rebuild
# cheap, and the CDK hashes the directory, so an unchanged binary is an unchanged asset. The checks only need
# the template, so unless CDK_REAL_BOOTSTRAP=1 (set it for `cdk deploy`) a placeholder stands in for the
# linux/arm64 cross-build of keyferry, which costs about nine minutes on a cold cache.
CDK_REAL_BOOTSTRAP ?= 0
infra-cdk-bootstrap:
	@mkdir -p $(CDK_BUILD)/lambda
ifeq ($(CDK_REAL_BOOTSTRAP),1)
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -tags lambda.norpc -o $(CDK_BUILD)/lambda/bootstrap ./functions/aws
else
	@printf '#!/bin/sh\necho "placeholder: build with CDK_REAL_BOOTSTRAP=1 before cdk deploy" >&2\nexit 1\n' > $(CDK_BUILD)/lambda/bootstrap
	@chmod 0755 $(CDK_BUILD)/lambda/bootstrap
endif

# go.mod/go.sum must be tidy: the app imports keyferry's core/config through `replace => ../..`, so a new
# import there needs `go mod tidy` here too. Checked, not fixed, so the change is committed.
infra-cdk-app:
	@cd $(CDK_DIR) && $(GO) mod tidy -diff >/dev/null || { echo "infra/cdk/go.mod or go.sum is out of date (did keyferry's core/config gain an import?): run  cd infra/cdk && go mod tidy"; exit 1; }
	cd $(CDK_DIR) && $(GO) build -o build/cdkapp .

infra-cdk-synth: infra-cdk-cli infra-cdk-bootstrap infra-cdk-app
	@rm -rf $(CDK_DIR)/$(CDK_OUT)
	cd $(CDK_DIR) && $(CDK_ENV) $(abspath $(CDK_CLI)) synth --no-notices -q -o $(CDK_OUT) $(CDK_TEST_CONTEXT)
	@test -s $(CDK_DIR)/$(CDK_TEMPLATE) || { echo "cdk synth wrote no $(CDK_DIR)/$(CDK_TEMPLATE)"; exit 1; }

infra-cdk-lint: infra-cdk-synth
	$(CFN_LINT) -i $(CFN_LINT_IGNORE) -- $(CDK_DIR)/$(CDK_TEMPLATE)

# The module's tests: the least-privilege checker on the bad fixtures and on the template just synthesized
# (KEYFERRY_CDK_TEMPLATE), the stack built in-process (Template.FromStack), the prefix derivation, and the
# grants of both templates against the AWS operations keyferry's code calls (infra/opslist).
infra-cdk-test: infra-cdk-synth
	cd $(CDK_DIR) && KEYFERRY_CDK_TEMPLATE=$(CDK_TEMPLATE) $(GO) test -count=1 ./...

infra-cdk-clean:
	rm -rf $(CDK_BUILD)
	rm -rf $(CACHE_DIR)/aws-cdk-*

.DEFAULT_GOAL := $(cdk_saved_default_goal)
