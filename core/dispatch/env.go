package dispatch

import (
	"context"
	"errors"
)

// Environment variables a function reads its configuration from.
const (
	EnvConfigFile = "KEYFERRY_CONFIG"      // path of keyferry.yaml inside the function package
	EnvConfigYAML = "KEYFERRY_CONFIG_YAML" // the configuration itself (takes precedence)
	EnvHome       = "KEYFERRY_HOME_CLOUD"  // aws | azure | gcp: the cloud the function runs in
)

// FromEnv builds the Core from the configuration the environment names. It opens stores without calling
// them: no SDK configuration is loaded until a store is used.
func FromEnv(ctx context.Context) (Core, error) {
	return nil, errors.New("dispatch: not implemented yet")
}
