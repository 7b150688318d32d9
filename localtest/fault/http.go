package fault

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Dialect names calls and shapes injected faults the way one family of services does.
type Dialect interface {
	// API names the call, e.g. "secretsmanager:PutSecretValue".
	API(r *http.Request) string
	// Throttle writes the service's throttling response.
	Throttle(w http.ResponseWriter, api string, retryAfter time.Duration)
	// ServerError writes the service's transient server error.
	ServerError(w http.ResponseWriter, api string)
}

// Handler wraps next with the layer, speaking dialect d.
func (l *Layer) Handler(d Dialect, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api := d.API(r)
		out, rule := l.Decide(api)
		if rule.Latency > 0 {
			t := time.NewTimer(rule.Latency)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		switch out {
		case Throttled:
			d.Throttle(w, api, rule.RetryAfter)
		case ServerError:
			d.ServerError(w, api)
		case ResetConn:
			resetConn(w)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// Proxy is a reverse proxy on 127.0.0.1 that puts the layer in front of a backend.
type Proxy struct {
	URL string // http://127.0.0.1:PORT
	srv *http.Server
	lis net.Listener
}

// Proxy starts a reverse proxy to target (an http:// base URL) on a free 127.0.0.1 port.
func (l *Layer) Proxy(d Dialect, target string) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("fault proxy: bad target %q: %w", target, err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fault proxy: listen: %w", err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = nil
	rp.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, err error) {
		http.Error(w, "fault proxy: backend unreachable", http.StatusBadGateway)
	}
	p := &Proxy{URL: "http://" + lis.Addr().String(), lis: lis,
		srv: &http.Server{Handler: l.Handler(d, rp), ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = p.srv.Serve(lis) }()
	return p, nil
}

// Close stops the proxy.
func (p *Proxy) Close() error { return p.srv.Close() }

func resetConn(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "reset", http.StatusBadGateway)
		return
	}
	c, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // close with RST
	}
	_ = c.Close()
}

func retrySeconds(d time.Duration) string {
	return strconv.Itoa(int(math.Ceil(d.Seconds())))
}

func writeJSON(w http.ResponseWriter, status int, ctype string, body any) {
	w.Header().Set("Content-Type", ctype)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// AWS speaks the AWS JSON (X-Amz-Target) and query (Action=) protocols: Secrets Manager, SSM, ACM, KMS,
// EventBridge, SNS, STS.
var AWS Dialect = awsDialect{}

type awsDialect struct{}

var awsTargetPrefixes = map[string]string{
	"secretsmanager":     "secretsmanager",
	"amazonssm":          "ssm",
	"certificatemanager": "acm",
	"trentservice":       "kms",
	"awsevents":          "events",
	"acmprivateca":       "acm-pca",
}

func (awsDialect) API(r *http.Request) string {
	if t := r.Header.Get("X-Amz-Target"); t != "" {
		svc, op, ok := strings.Cut(t, ".")
		if !ok {
			return "aws:" + t
		}
		if s, ok := awsTargetPrefixes[strings.ToLower(svc)]; ok {
			svc = s
		}
		return strings.ToLower(svc) + ":" + op
	}
	// Query protocol: Action in the form body or the URL.
	action := r.URL.Query().Get("Action")
	if action == "" && r.Body != nil && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		if v, err := url.ParseQuery(string(b)); err == nil {
			action = v.Get("Action")
		}
	}
	svc := "aws"
	if auth := r.Header.Get("Authorization"); strings.Contains(auth, "/sts/") || action == "AssumeRoleWithWebIdentity" {
		svc = "sts"
	} else if strings.Contains(auth, "/sns/") {
		svc = "sns"
	}
	if action == "" {
		return svc + ":" + r.Method + " " + r.URL.Path
	}
	return svc + ":" + action
}

func (awsDialect) Throttle(w http.ResponseWriter, api string, retryAfter time.Duration) {
	w.Header().Set("x-amzn-ErrorType", "ThrottlingException")
	w.Header().Set("Retry-After", retrySeconds(retryAfter))
	if strings.HasPrefix(api, "sts:") || strings.HasPrefix(api, "sns:") {
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>fault</RequestId></ErrorResponse>`)
		return
	}
	writeJSON(w, http.StatusBadRequest, "application/x-amz-json-1.1",
		map[string]string{"__type": "ThrottlingException", "message": "Rate exceeded"})
}

func (awsDialect) ServerError(w http.ResponseWriter, api string) {
	w.Header().Set("x-amzn-ErrorType", "InternalServiceError")
	if strings.HasPrefix(api, "sts:") || strings.HasPrefix(api, "sns:") {
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `<ErrorResponse><Error><Type>Receiver</Type><Code>ServiceUnavailable</Code><Message>Service unavailable</Message></Error><RequestId>fault</RequestId></ErrorResponse>`)
		return
	}
	writeJSON(w, http.StatusInternalServerError, "application/x-amz-json-1.1",
		map[string]string{"__type": "InternalServiceError", "message": "An error occurred on the server side."})
}

// AzureKeyVault speaks the Key Vault data-plane REST API (secrets, certificates, keys).
var AzureKeyVault Dialect = azureDialect{}

type azureDialect struct{}

func (azureDialect) API(r *http.Request) string {
	seg := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(seg) == 0 || seg[0] == "" {
		return "keyvault:" + r.Method + " /"
	}
	coll := seg[0] // secrets, certificates, keys, deletedsecrets, ...
	obj := map[string]string{"secrets": "Secret", "certificates": "Certificate", "keys": "Key",
		"deletedsecrets": "DeletedSecret", "deletedcertificates": "DeletedCertificate", "deletedkeys": "DeletedKey"}[coll]
	if obj == "" {
		return "keyvault:" + r.Method + " " + coll
	}
	n := len(seg)
	deleted := strings.HasPrefix(coll, "deleted")
	switch {
	case n == 1 && r.Method == http.MethodGet:
		return "keyvault:List" + obj + "s"
	case deleted && n == 2 && r.Method == http.MethodGet:
		return "keyvault:Get" + obj
	case deleted && n == 2 && r.Method == http.MethodDelete:
		return "keyvault:Purge" + obj
	case deleted && n == 3 && seg[2] == "recover":
		return "keyvault:Recover" + obj
	case n == 2 && (r.Method == http.MethodPut):
		return "keyvault:Set" + obj
	case n == 2 && r.Method == http.MethodDelete:
		return "keyvault:Delete" + obj
	case n >= 3 && seg[2] == "versions":
		return "keyvault:List" + obj + "Versions"
	case n >= 3 && (seg[2] == "import" || seg[2] == "create" || seg[2] == "sign" || seg[2] == "pending"):
		return "keyvault:" + r.Method + " " + obj + " " + seg[2]
	case n >= 4 && r.Method == http.MethodPost:
		return "keyvault:" + obj + " " + seg[3] // e.g. keys/<k>/<v>/sign
	case r.Method == http.MethodPatch:
		return "keyvault:Update" + obj + "Properties"
	case r.Method == http.MethodGet:
		return "keyvault:Get" + obj
	}
	return "keyvault:" + r.Method + " " + obj
}

func (azureDialect) Throttle(w http.ResponseWriter, _ string, retryAfter time.Duration) {
	s := retrySeconds(retryAfter)
	w.Header().Set("Retry-After", s)
	if retryAfter%time.Second != 0 {
		// Key Vault itself sends whole seconds; sub-second waits (a test-speed knob) go in the
		// header azcore reads first.
		w.Header().Set("retry-after-ms", strconv.FormatInt(retryAfter.Milliseconds(), 10))
	}
	writeJSON(w, http.StatusTooManyRequests, "application/json; charset=utf-8", map[string]any{"error": map[string]any{
		// The service's body, as recorded from a real 429 (the wait is only in the headers).
		"code":    "Throttled",
		"message": "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached",
	}})
}

func (azureDialect) ServerError(w http.ResponseWriter, _ string) {
	writeJSON(w, http.StatusServiceUnavailable, "application/json; charset=utf-8", map[string]any{"error": map[string]any{
		"code": "ServiceUnavailable", "message": "The service is temporarily unavailable. Please try again later.",
	}})
}

// Vault speaks HashiCorp Vault's HTTP API.
var Vault Dialect = vaultDialect{}

type vaultDialect struct{}

func (vaultDialect) API(r *http.Request) string {
	seg := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/v1/"), "/"), "/")
	m := r.Method
	if m == http.MethodGet && r.URL.Query().Get("list") == "true" {
		m = "LIST"
	}
	if len(seg) >= 1 && seg[0] == "auth" {
		if len(seg) >= 3 && seg[len(seg)-1] == "login" || len(seg) >= 4 && seg[2] == "login" {
			return "vault:auth-login"
		}
		return "vault:auth " + m
	}
	if len(seg) >= 1 && seg[0] == "sys" {
		return "vault:sys " + m
	}
	if len(seg) >= 2 {
		switch seg[1] {
		case "data":
			switch m {
			case http.MethodGet:
				return "vault:kv-read"
			case http.MethodDelete:
				return "vault:kv-delete"
			case http.MethodPatch:
				return "vault:kv-patch"
			default:
				return "vault:kv-write"
			}
		case "metadata":
			switch m {
			case "LIST":
				return "vault:kv-list"
			case http.MethodGet:
				return "vault:kv-metadata-read"
			case http.MethodDelete:
				return "vault:kv-metadata-delete"
			default:
				return "vault:kv-metadata-write"
			}
		case "delete", "undelete", "destroy", "subkeys", "config":
			return "vault:kv-" + seg[1]
		case "issue", "sign", "sign-verbatim", "cert", "certs", "roles", "root", "intermediate", "ca", "ca_chain":
			return "vault:pki-" + seg[1]
		}
	}
	return "vault:" + m + " " + strings.Join(seg[:min(len(seg), 2)], "/")
}

func (vaultDialect) Throttle(w http.ResponseWriter, api string, retryAfter time.Duration) {
	w.Header().Set("Retry-After", retrySeconds(retryAfter))
	writeJSON(w, http.StatusTooManyRequests, "application/json",
		map[string]any{"errors": []string{"request path \"" + api + "\": rate limit quota exceeded"}})
}

func (vaultDialect) ServerError(w http.ResponseWriter, _ string) {
	writeJSON(w, http.StatusServiceUnavailable, "application/json",
		map[string]any{"errors": []string{"Vault is sealed"}})
}
