package dispatch

import (
	"context"
	"fmt"
	"os"

	"github.com/keyferry/keyferry/core/config"
)

// Environment variables a function reads its configuration from.
const (
	EnvConfigFile = "KEYFERRY_CONFIG"      // path of keyferry.yaml inside the function package
	EnvConfigYAML = "KEYFERRY_CONFIG_YAML" // the configuration itself (takes precedence)
)

// FromEnv builds the Core from the configuration the environment names. It opens stores without calling
// them: no SDK configuration is loaded until a store is used.
func FromEnv(ctx context.Context) (Core, error) {
	cfg, err := ConfigFromEnv()
	if err != nil {
		return nil, err
	}
	return New(ctx, cfg, Options{})
}

// ConfigFromEnv loads the configuration named by the environment.
func ConfigFromEnv() (*config.Config, error) {
	if y := os.Getenv(EnvConfigYAML); y != "" {
		return config.Parse(EnvConfigYAML, []byte(y))
	}
	path := os.Getenv(EnvConfigFile)
	if path == "" {
		path = "keyferry.yaml"
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, fmt.Errorf("loading the configuration (%s=%s): %w", EnvConfigFile, path, err)
	}
	return cfg, nil
}
