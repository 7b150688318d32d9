package dispatch

import (
	"net"
	"net/url"
	"strings"

	"github.com/keyferry/keyferry/core/config"
	"github.com/keyferry/keyferry/core/event"
)

// Resolve names the configured stores a change event is about: the stores of the event's service in the
// event's region (AWS), vault (Azure) or project (GCP). An event about a store keyferry is not configured
// for resolves to none and is acknowledged.
//
// GCP notifications may name the project by number while keyferry.yaml names it by id: a numeric project
// matches the only gcp-secretmanager store when there is exactly one.
func Resolve(cfg *config.Config, ch event.Change) []string {
	var out []string
	var gcp []string
	for _, sc := range cfg.Stores {
		if sc.Type != ch.Service {
			continue
		}
		switch sc.Type {
		case config.TypeAWSSecretsManager:
			if ch.Region == "" || sc.AWSSecretsManager.Region == ch.Region {
				out = append(out, sc.Name)
			}
		case config.TypeAWSSSM:
			if ch.Region == "" || sc.AWSSSM.Region == ch.Region {
				out = append(out, sc.Name)
			}
		case config.TypeAzureKeyVault:
			if vaultMatches(sc, ch.Vault) {
				out = append(out, sc.Name)
			}
		case config.TypeGCPSecretManager:
			gcp = append(gcp, sc.Name)
			if sc.GCPSecretManager.Project == ch.Project {
				out = append(out, sc.Name)
			}
		}
	}
	if ch.Service == event.ServiceSecretManager && len(out) == 0 && len(gcp) == 1 && isNumber(ch.Project) {
		out = gcp
	}
	return out
}

// vaultMatches compares an event's vault name with a store's vault URL (https://NAME.vault.azure.net).
// A store of the local cloud, reached at a loopback address, matches any vault name: the local cloud has
// one Key Vault.
func vaultMatches(sc *config.StoreConfig, vault string) bool {
	u, err := url.Parse(sc.AzureKeyVault.Vault)
	if err != nil {
		return false
	}
	host := u.Hostname()
	if sc.Local {
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() || host == "localhost" {
			return true
		}
	}
	name, _, _ := strings.Cut(host, ".")
	return vault != "" && strings.EqualFold(name, vault)
}

func isNumber(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
