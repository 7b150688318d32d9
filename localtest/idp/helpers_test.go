package idp

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyferry/keyferry/localtest/oidc"
)

func tctx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func startIssuer(t *testing.T, opts oidc.Options) *oidc.Issuer {
	t.Helper()
	iss, err := oidc.Start(opts)
	if err != nil {
		t.Fatalf("oidc.Start: %v", err)
	}
	t.Cleanup(func() { _ = iss.Close() })
	return iss
}

// issuers is the cast of every refusal table: the trusted issuer, a forger signing with a different
// key under the trusted issuer's kid (and claiming its iss), and a stranger (a second, untrusted issuer).
type issuers struct {
	good, forger, stranger *oidc.Issuer
}

func newIssuers(t *testing.T, opts oidc.Options) issuers {
	t.Helper()
	good := startIssuer(t, opts)
	return issuers{
		good:     good,
		forger:   startIssuer(t, oidc.Options{KeyID: good.KeyID()}),
		stranger: startIssuer(t, oidc.Options{}),
	}
}

// mint signs claims with from; the defaults (iss of the trusted issuer, aud, sub) are overridden by claims.
func mint(t *testing.T, from *oidc.Issuer, base map[string]any, claims map[string]any) string {
	t.Helper()
	all := map[string]any{}
	for k, v := range base {
		all[k] = v
	}
	for k, v := range claims {
		all[k] = v
	}
	tok, err := from.Mint(all)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// refusalTokens are the five standard bad tokens, keyed by case name.
func refusalTokens(t *testing.T, is issuers, base map[string]any, wrongAud, wrongSub string) map[string]string {
	t.Helper()
	now := time.Now()
	stranger := map[string]any{}
	for k, v := range base {
		stranger[k] = v
	}
	stranger["iss"] = is.stranger.Issuer()
	return map[string]string{
		"wrong audience": mint(t, is.good, base, map[string]any{"aud": wrongAud}),
		"wrong subject":  mint(t, is.good, base, map[string]any{"sub": wrongSub}),
		"wrong issuer":   mint(t, is.stranger, stranger, nil),
		"expired":        mint(t, is.good, base, map[string]any{"exp": now.Add(-10 * time.Minute), "iat": now.Add(-time.Hour), "nbf": now.Add(-time.Hour)}),
		"bad signature":  mint(t, is.forger, base, nil),
	}
}

func postForm(t *testing.T, c *http.Client, u string, form url.Values, header http.Header) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(tctx(t), http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

func decodeJSON(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("response is not JSON: %v\n%s", err, body)
	}
	return m
}

func wantContains(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s does not mention %q:\n%s", what, sub, s)
		}
	}
}

// refusalCounter is what every fake exposes.
type refusalCounter interface {
	Accepted() int64
	Refused() int64
}

// expectOneRefusal checks that f refused exactly one more request and accepted none.
func expectOneRefusal(t *testing.T, c refusalCounter, f func()) {
	t.Helper()
	a0, r0 := c.Accepted(), c.Refused()
	f()
	if a, r := c.Accepted()-a0, c.Refused()-r0; a != 0 || r != 1 {
		t.Errorf("counters moved by accepted %+d refused %+d, want +0/+1", a, r)
	}
}
