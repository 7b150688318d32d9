// Command vaultdev is HashiCorp Vault built from its Go module, used by the local cloud as a dev server.
// It lives in its own module so that Vault's dependency graph stays out of keyferry's go.mod.
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() { os.Exit(command.Run(os.Args[1:])) }
