package fault

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestAPINames(t *testing.T) {
	tests := []struct {
		d      Dialect
		method string
		path   string
		header map[string]string
		body   string
		want   string
	}{
		{AWS, "POST", "/", map[string]string{"X-Amz-Target": "secretsmanager.PutSecretValue"}, "", "secretsmanager:PutSecretValue"},
		{AWS, "POST", "/", map[string]string{"X-Amz-Target": "AmazonSSM.GetParameter"}, "", "ssm:GetParameter"},
		{AWS, "POST", "/", map[string]string{"X-Amz-Target": "CertificateManager.ImportCertificate"}, "", "acm:ImportCertificate"},
		{AWS, "POST", "/", map[string]string{"X-Amz-Target": "TrentService.Sign"}, "", "kms:Sign"},
		{AWS, "POST", "/", map[string]string{"Content-Type": "application/x-www-form-urlencoded",
			"Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/sts/aws4_request"},
			"Action=GetCallerIdentity&Version=2011-06-15", "sts:GetCallerIdentity"},
		{AWS, "POST", "/", map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
			"Action=AssumeRoleWithWebIdentity&Version=2011-06-15", "sts:AssumeRoleWithWebIdentity"},
		{AzureKeyVault, "PUT", "/secrets/db-pass", nil, "", "keyvault:SetSecret"},
		{AzureKeyVault, "GET", "/secrets/db-pass/", nil, "", "keyvault:GetSecret"},
		{AzureKeyVault, "GET", "/secrets/db-pass/0123456789abcdef0123456789abcdef", nil, "", "keyvault:GetSecret"},
		{AzureKeyVault, "PATCH", "/secrets/db-pass/0123456789abcdef0123456789abcdef", nil, "", "keyvault:UpdateSecretProperties"},
		{AzureKeyVault, "GET", "/secrets", nil, "", "keyvault:ListSecrets"},
		{AzureKeyVault, "GET", "/secrets/db-pass/versions", nil, "", "keyvault:ListSecretVersions"},
		{AzureKeyVault, "DELETE", "/secrets/db-pass", nil, "", "keyvault:DeleteSecret"},
		{AzureKeyVault, "GET", "/deletedsecrets/db-pass", nil, "", "keyvault:GetDeletedSecret"},
		{AzureKeyVault, "POST", "/deletedsecrets/db-pass/recover", nil, "", "keyvault:RecoverDeletedSecret"},
		{AzureKeyVault, "DELETE", "/deletedsecrets/db-pass", nil, "", "keyvault:PurgeDeletedSecret"},
		{Vault, "GET", "/v1/secret/data/app/db", nil, "", "vault:kv-read"},
		{Vault, "PUT", "/v1/secret/data/app/db", nil, "", "vault:kv-write"},
		{Vault, "POST", "/v1/secret/data/app/db", nil, "", "vault:kv-write"},
		{Vault, "GET", "/v1/secret/metadata/app/db", nil, "", "vault:kv-metadata-read"},
		{Vault, "LIST", "/v1/secret/metadata/app/", nil, "", "vault:kv-list"},
		{Vault, "GET", "/v1/secret/metadata/app/?list=true", nil, "", "vault:kv-list"},
		{Vault, "POST", "/v1/secret/undelete/app/db", nil, "", "vault:kv-undelete"},
		{Vault, "PUT", "/v1/auth/jwt/login", nil, "", "vault:auth-login"},
		{Vault, "GET", "/v1/sys/health", nil, "", "vault:sys GET"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
		for k, v := range tt.header {
			r.Header.Set(k, v)
		}
		if got := tt.d.API(r); got != tt.want {
			t.Errorf("%s %s: API = %q, want %q", tt.method, tt.path, got, tt.want)
		}
		if tt.body != "" {
			b, _ := io.ReadAll(r.Body)
			if string(b) != tt.body {
				t.Errorf("%s %s: body not restored after classification", tt.method, tt.path)
			}
		}
	}
	if got := GRPCAPI("/google.cloud.secretmanager.v1.SecretManagerService/AddSecretVersion"); got != "secretmanager:AddSecretVersion" {
		t.Errorf("GRPCAPI = %q", got)
	}
	if got := GRPCAPI("/google.pubsub.v1.Publisher/Publish"); got != "pubsub:Publish" {
		t.Errorf("GRPCAPI = %q", got)
	}
}

func TestQuotaTokenBucket(t *testing.T) {
	l := New(0.5, 1) // half the real quota
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	l.SetRules(Rule{API: "secretsmanager:Put*", Rate: 10, Burst: 5})

	pass := 0
	for i := 0; i < 20; i++ {
		if out, _ := l.Decide("secretsmanager:PutSecretValue"); out == Pass {
			pass++
		}
	}
	if pass != 5 {
		t.Fatalf("burst: %d calls passed, want 5", pass)
	}
	now = now.Add(2 * time.Second) // 2 s × 10/s × 0.5 = 10 tokens, capped at the burst of 5
	pass = 0
	for i := 0; i < 20; i++ {
		if out, _ := l.Decide("secretsmanager:PutSecretValue"); out == Pass {
			pass++
		}
	}
	if pass != 5 {
		t.Fatalf("after refill: %d passed, want 5", pass)
	}
	if out, _ := l.Decide("secretsmanager:GetSecretValue"); out != Pass {
		t.Fatalf("an API outside the rule was throttled")
	}
	if got := l.QuotaThrottles()["secretsmanager:PutSecretValue"]; got != 30 {
		t.Fatalf("quota throttles = %d, want 30", got)
	}
	if got := l.Count("secretsmanager:*"); got != 41 {
		t.Fatalf("calls = %d, want 41", got)
	}
}

// TestSharedBucket: rules naming one Bucket draw from one quota, as GCP's per-project write quota covers
// CreateSecret and AddSecretVersion together; a rule without a Bucket keeps one bucket per API.
func TestSharedBucket(t *testing.T) {
	l := New(1, 1)
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	l.SetRules(Rule{API: "secretmanager:CreateSecret", Rate: 4, Burst: 4, Bucket: "write"},
		Rule{API: "secretmanager:AddSecretVersion", Rate: 4, Burst: 4, Bucket: "write"},
		Rule{API: "secretmanager:Get*", Rate: 2, Burst: 2})
	pass := 0
	for i := 0; i < 4; i++ {
		for _, api := range []string{"secretmanager:CreateSecret", "secretmanager:AddSecretVersion"} {
			if out, _ := l.Decide(api); out == Pass {
				pass++
			}
		}
	}
	if pass != 4 {
		t.Fatalf("shared bucket: %d of 8 writes passed, want 4", pass)
	}
	pass = 0
	for _, api := range []string{"secretmanager:GetSecret", "secretmanager:GetSecret", "secretmanager:GetSecretVersion", "secretmanager:GetSecretVersion"} {
		if out, _ := l.Decide(api); out == Pass {
			pass++
		}
	}
	if pass != 4 {
		t.Fatalf("per-API buckets: %d of 4 reads passed, want 4 (2 per API)", pass)
	}
}

func TestInjectedRates(t *testing.T) {
	l := New(1, 42)
	l.SetRules(Rule{API: "*", Throttle: 0.2, ServerError: 0.1})
	counts := map[Outcome]int{}
	const n = 20000
	for i := 0; i < n; i++ {
		out, _ := l.Decide("x:Op")
		counts[out]++
	}
	near := func(got int, p float64) bool { return float64(got) > 0.9*p*n && float64(got) < 1.1*p*n }
	if !near(counts[Throttled], 0.2) || !near(counts[ServerError], 0.1) {
		t.Fatalf("outcomes %v, want ~20%% throttled and ~10%% server errors", counts)
	}
	if got := l.InjectedCount("*"); got != int64(counts[Throttled]+counts[ServerError]) {
		t.Fatalf("injected counter %d disagrees with outcomes %v", got, counts)
	}
	l.ResetCounters()
	if l.Count("*") != 0 {
		t.Fatal("ResetCounters left calls")
	}
}

func TestHTTPShapes(t *testing.T) {
	backend := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	for _, tt := range []struct {
		name       string
		d          Dialect
		status     int
		errorField string
	}{
		{"aws", AWS, 400, "ThrottlingException"},
		{"azure", AzureKeyVault, 429, "Throttled"},
		{"vault", Vault, 429, "rate limit quota exceeded"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := New(1, 1)
			l.SetRules(Rule{API: "*", Throttle: 1, RetryAfter: 1500 * time.Millisecond})
			srv := httptest.NewServer(l.Handler(tt.d, backend))
			defer srv.Close()
			req, _ := http.NewRequest("PUT", srv.URL+"/v1/secret/data/x", nil)
			req.Header.Set("X-Amz-Target", "secretsmanager.PutSecretValue")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.errorField) {
				t.Fatalf("got %d %s, want %d with %q", resp.StatusCode, body, tt.status, tt.errorField)
			}
			if resp.Header.Get("Retry-After") != "2" {
				t.Fatalf("Retry-After = %q, want 2 (1.5 s rounded up)", resp.Header.Get("Retry-After"))
			}
			if !json.Valid(body) {
				t.Fatalf("error body is not JSON: %s", body)
			}
			// Passing again once the rule is gone.
			l.SetRules()
			resp2, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp2.Body.Close()
			if resp2.StatusCode != 200 {
				t.Fatalf("after clearing rules: %d", resp2.StatusCode)
			}
		})
	}
}

func TestProxyResetAndLatency(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "backend") }))
	defer backend.Close()
	l := New(1, 7)
	p, err := l.Proxy(Vault, backend.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if !strings.HasPrefix(p.URL, "http://127.0.0.1:") {
		t.Fatalf("proxy URL %q is not on 127.0.0.1", p.URL)
	}
	// No connection reuse: Go's transport silently retries an idempotent request whose reused
	// connection was reset, which would hide the count.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(p.URL + "/v1/secret/data/x")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "backend" {
		t.Fatalf("proxied body %q", b)
	}

	l.SetRules(Rule{API: "vault:kv-read", Reset: 1})
	_, err = client.Get(p.URL + "/v1/secret/data/x")
	if err == nil || !(errors.Is(err, syscall.ECONNRESET) || strings.Contains(err.Error(), "EOF") || strings.Contains(err.Error(), "reset")) {
		t.Fatalf("reset: got %v, want a connection reset", err)
	}

	l.SetRules(Rule{API: "vault:*", Latency: 150 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", p.URL+"/v1/secret/data/x", nil)
	if _, err := client.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("latency: got %v, want the caller's deadline to expire first", err)
	}
	if l.Count("vault:kv-read") != 3 {
		t.Fatalf("calls = %v", l.Calls())
	}
}

func TestGRPCInterceptor(t *testing.T) {
	l := New(1, 3)
	l.SetRules(Rule{API: "secretmanager:AddSecretVersion", Throttle: 1, RetryAfter: 250 * time.Millisecond})
	ic := l.UnaryServerInterceptor()
	handler := func(ctx context.Context, req any) (any, error) { return "ok", nil }
	_, err := ic(context.Background(), nil,
		&grpc.UnaryServerInfo{FullMethod: "/google.cloud.secretmanager.v1.SecretManagerService/AddSecretVersion"}, handler)
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted {
		t.Fatalf("code %v, want ResourceExhausted", st.Code())
	}
	var delay time.Duration
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			delay = ri.GetRetryDelay().AsDuration()
		}
	}
	if delay != 250*time.Millisecond {
		t.Fatalf("RetryInfo delay %v, want 250ms", delay)
	}
	out, err := ic(context.Background(), nil,
		&grpc.UnaryServerInfo{FullMethod: "/google.cloud.secretmanager.v1.SecretManagerService/GetSecret"}, handler)
	if err != nil || out != "ok" {
		t.Fatalf("unmatched API: %v %v", out, err)
	}
}
