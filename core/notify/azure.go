package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/keyferry/keyferry/core/config"
)

// EventGridScope is the Entra scope of Event Grid data-plane tokens (role: EventGrid Data Sender).
const EventGridScope = "https://eventgrid.azure.net/.default"

type eventGridPublisher struct {
	endpoint string
	hc       *http.Client
	cred     azcore.TokenCredential
}

func newEventGrid(rc config.NotifyRoute) (publisher, error) {
	hc := &http.Client{Timeout: 30 * time.Second}
	var mo azidentity.ManagedIdentityCredentialOptions
	if rc.CAFile != "" {
		pem, err := os.ReadFile(rc.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s holds no PEM certificate", rc.CAFile)
		}
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		hc.Transport = t
		mo.ClientOptions.Transport = hc
	}
	cred, err := azidentity.NewManagedIdentityCredential(&mo)
	if err != nil {
		return nil, fmt.Errorf("managed identity: %w", err)
	}
	endpoint := rc.Topic
	if rc.Endpoint != "" {
		endpoint = rc.Endpoint
	}
	return &eventGridPublisher{endpoint: endpoint, hc: hc, cred: cred}, nil
}

// publish posts one event in the Event Grid schema, as a custom topic takes it.
func (p *eventGridPublisher) publish(ctx context.Context, kind string, body []byte) error {
	var alert struct {
		Rule       string `json:"rule"`
		TargetName string `json:"target_name"`
	}
	_ = json.Unmarshal(body, &alert)
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	events, err := json.Marshal([]map[string]any{{
		"id": hex.EncodeToString(id), "eventType": Source + "." + kind, "subject": Source + "/" + alert.Rule + "/" + alert.TargetName,
		"eventTime": time.Now().UTC().Format(time.RFC3339Nano), "data": json.RawMessage(body), "dataVersion": "1",
	}})
	if err != nil {
		return err
	}
	tok, err := p.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{EventGridScope}})
	if err != nil {
		return fmt.Errorf("token for %s: %w", EventGridScope, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.endpoint, bytes.NewReader(events))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	resp, err := p.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error.Code != "" {
			return fmt.Errorf("Event Grid answered %d %s: %s", resp.StatusCode, e.Error.Code, e.Error.Message)
		}
		return fmt.Errorf("Event Grid answered %d", resp.StatusCode)
	}
	return nil
}

func (p *eventGridPublisher) close() error { return nil }
