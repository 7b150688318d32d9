# infra/bicep/bicep.mk — checks of the Azure Bicep (infra/bicep), included by the root Makefile:
#
#   include infra/bicep/bicep.mk
#
#   make infra-check-bicep   syntax of every .bicep/.bicepparam (tree-sitter-bicep: there is no offline Bicep
#                            compiler, so no type or schema check), shown able to fail on a fixture; and the
#                            role-assignment scope test (infra/bicep/bicepcheck)
#
# tree-sitter and tree-sitter-bicep are installed once from the npm registry (versions pinned in
# infra/bicep/tools/package.json and package-lock.json) into the cache, keyed on those two files:
#   $(BICEP_TOOLS_DIR)/node_modules
# The key is the only thing deciding a reinstall (no timestamps: a fresh clone must reuse the cache).
#
# Uses GO and CACHE_DIR from the including Makefile (defaults below when run on its own with make -f).

GO        ?= go
CACHE_DIR ?= $(HOME)/.cache/keyferry
NODE      ?= node
NPM       ?= npm

# Where this fragment lives, relative to the directory make runs in (the repository root).
BICEP_DIR       := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
# Including this file must not change the including Makefile's default goal.
_kf_bicep_goal  := $(.DEFAULT_GOAL)

BICEP_TOOLS_KEY := $(shell cat $(BICEP_DIR)/tools/package.json $(BICEP_DIR)/tools/package-lock.json 2>/dev/null | sha256sum | cut -c1-12)
BICEP_TOOLS_DIR ?= $(abspath $(CACHE_DIR))/bicep-tree-sitter-$(BICEP_TOOLS_KEY)
BICEP_CHECK     := NODE_PATH=$(BICEP_TOOLS_DIR)/node_modules $(NODE) $(BICEP_DIR)/tools/check.js

.PHONY: infra-check-bicep infra-bicep-syntax infra-bicep-scopes infra-bicep-tools infra-clean-cache-bicep

infra-check-bicep: infra-bicep-syntax infra-bicep-scopes

infra-bicep-tools: $(BICEP_TOOLS_DIR)/node_modules

# Installed into a temporary directory and renamed, so an interrupted install is never taken for a cached one.
# --ignore-scripts: both packages ship prebuilt linux/darwin/windows binaries that load at run time; their
# install script would only try a native build when none fits.
$(BICEP_TOOLS_DIR)/node_modules:
	@command -v $(NODE) >/dev/null && command -v $(NPM) >/dev/null || { echo "node and npm are missing: install Node.js 20 (Debian: nodejs npm)"; exit 1; }
	@echo "installing tree-sitter-bicep into $(BICEP_TOOLS_DIR) (once)"
	@rm -rf $(BICEP_TOOLS_DIR).tmp && mkdir -p $(BICEP_TOOLS_DIR).tmp
	cp $(BICEP_DIR)/tools/package.json $(BICEP_DIR)/tools/package-lock.json $(BICEP_TOOLS_DIR).tmp/
	cd $(BICEP_TOOLS_DIR).tmp && $(NPM) ci --ignore-scripts --no-audit --no-fund --loglevel=error
	cd $(BICEP_TOOLS_DIR).tmp && $(NODE) -e "new (require('tree-sitter'))().setLanguage(require('tree-sitter-bicep'))"
	@rm -rf $(BICEP_TOOLS_DIR) && mv $(BICEP_TOOLS_DIR).tmp $(BICEP_TOOLS_DIR)

# Every file under infra/bicep (testdata directories excluded), then the fixtures with syntax errors, which
# must be rejected (exit 1) for the check to be trusted.
infra-bicep-syntax: infra-bicep-tools
	$(BICEP_CHECK) $(BICEP_DIR)
	@st=0; $(BICEP_CHECK) $(BICEP_DIR)/tools/testdata/syntax-error.bicep $(BICEP_DIR)/tools/testdata/syntax-error.bicepparam >/dev/null || st=$$?; \
	if [ $$st -eq 1 ]; then echo "syntax check rejects tools/testdata/syntax-error.bicep{,param}: ok"; \
	else echo "the syntax check did not reject its fixtures (exit $$st)"; exit 1; fi

infra-bicep-scopes:
	$(GO) test -count=1 ./$(BICEP_DIR)/bicepcheck/

infra-clean-cache-bicep:
	rm -rf $(abspath $(CACHE_DIR))/bicep-tree-sitter-*

.DEFAULT_GOAL := $(_kf_bicep_goal)
