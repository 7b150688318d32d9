package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/compute/metadata"
	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	"github.com/golang-jwt/jwt/v5"
	vault "github.com/hashicorp/vault/api"
)

// Error is a failed step of obtaining credentials for a peer.
type Error struct {
	// Direction is "<home> → <peer>", e.g. "azure → aws".
	Direction string
	// Step says what was attempted, e.g. "AssumeRoleWithWebIdentity for arn:aws:iam::1:role/r".
	Step string
	// Presented describes the credential sent (nil when none was sent).
	Presented *Presented
	// Status, Code and Message are the other side's answer: HTTP status, error code, message.
	Status  int
	Code    string
	Message string
	// Err is the underlying error.
	Err error
}

// Presented describes what was presented to the other side, without any secret.
type Presented struct {
	// Kind is "JWT" or "aws4_request" (a SigV4-signed GetCallerIdentity).
	Kind     string
	Issuer   string
	Subject  string
	Audience []string
	Expires  time.Time
	// Detail is a free-form description (the signing access key, masked, for aws4_request).
	Detail string
}

func (p *Presented) String() string {
	if p == nil {
		return ""
	}
	if p.Kind != "JWT" {
		return strings.TrimSpace(p.Kind + " " + p.Detail)
	}
	s := fmt.Sprintf("JWT iss=%q sub=%q aud=%q", p.Issuer, p.Subject, strings.Join(p.Audience, ","))
	if !p.Expires.IsZero() {
		s += " exp=" + p.Expires.UTC().Format(time.RFC3339)
	}
	return s
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Direction)
	b.WriteString(": ")
	b.WriteString(e.Step)
	switch {
	case e.Status != 0 || e.Code != "" || e.Message != "":
		b.WriteString(": refused:")
		if e.Status != 0 {
			fmt.Fprintf(&b, " HTTP %d", e.Status)
		}
		if e.Code != "" {
			b.WriteString(" " + e.Code)
		}
		if e.Message != "" {
			b.WriteString(": " + e.Message)
		}
	case e.Err != nil:
		b.WriteString(": " + e.Err.Error())
	}
	if e.Presented != nil {
		b.WriteString("; presented " + e.Presented.String())
	}
	return redact(b.String())
}

// Unwrap returns the underlying SDK error (for errors.As on its typed errors).
func (e *Error) Unwrap() error { return e.Err }

// CredentialHint says what to fix (store.CredentialFailure): the peer's trust of this home, not the
// store's permissions.
func (e *Error) CredentialHint() string {
	return "the " + e.Direction + " federation was refused: check that the peer trusts exactly the issuer, subject and audience presented (see infra/ and docs/deploy.md)"
}

var (
	jwtRE    = regexp.MustCompile(`eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*`)
	googleRE = regexp.MustCompile(`ya29\.[A-Za-z0-9._-]+`)
	vaultRE  = regexp.MustCompile(`\bhv[sbr]\.[A-Za-z0-9_-]{20,}`)
)

// redact removes anything shaped like a token (JWT, Google access token, Vault token).
func redact(s string) string {
	s = jwtRE.ReplaceAllString(s, "[token redacted]")
	s = googleRE.ReplaceAllString(s, "[token redacted]")
	return vaultRE.ReplaceAllString(s, "[token redacted]")
}

// presentJWT decodes a JWT's claims without verifying it.
func presentJWT(token string) *Presented {
	p := &Presented{Kind: "JWT"}
	mc := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(token, mc); err != nil {
		p.Detail = "(not a decodable JWT)"
		return p
	}
	p.Issuer, _ = mc["iss"].(string)
	p.Subject, _ = mc["sub"].(string)
	p.Audience, _ = mc.GetAudience()
	if exp, err := mc.GetExpirationTime(); err == nil && exp != nil {
		p.Expires = exp.Time
	}
	return p
}

// presentAWS describes a SigV4-signed STS request (op) made with creds.
func presentAWS(creds aws.Credentials, region, op string) *Presented {
	return &Presented{Kind: "aws4_request", Detail: fmt.Sprintf("(SigV4-signed sts:%s, region %s, access key %s)",
		op, region, maskKey(creds.AccessKeyID))}
}

func maskKey(k string) string {
	if len(k) <= 8 {
		return "****"
	}
	return k[:4] + "…" + k[len(k)-4:]
}

// attempt collects, for one call, the credential presented and the other side's error answer. It
// travels in the context so that concurrent calls do not mix.
type attempt struct {
	mu        sync.Mutex
	presented *Presented
	answer    *answer
	homeErr   *Error // the home token could not be obtained
}

type answer struct {
	url           string
	status        int
	code, message string
}

type attemptKey struct{}

func withAttempt(ctx context.Context) (context.Context, *attempt) {
	a := &attempt{}
	return context.WithValue(ctx, attemptKey{}, a), a
}

func attemptFrom(ctx context.Context) *attempt {
	a, _ := ctx.Value(attemptKey{}).(*attempt)
	return a
}

func (a *attempt) present(p *Presented) {
	if a == nil {
		return
	}
	a.mu.Lock()
	a.presented = p
	a.mu.Unlock()
}

func (a *attempt) setHome(e *Error) {
	if a == nil {
		return
	}
	a.mu.Lock()
	a.homeErr = e
	a.mu.Unlock()
}

func (a *attempt) home() *Error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.homeErr
}

func (a *attempt) get() (*Presented, *answer) {
	if a == nil {
		return nil, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.presented, a.answer
}

// recorder is an http.RoundTripper that stores the error answers (status >= 400) of the requests it
// carries in the request context's attempt. Only error bodies are read; they carry no tokens.
type recorder struct{ next http.RoundTripper }

func (r recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err != nil || resp.StatusCode < 400 {
		return resp, err
	}
	a := attemptFrom(req.Context())
	if a == nil {
		return resp, err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	code, msg := parseAnswer(body)
	a.mu.Lock()
	a.answer = &answer{url: req.URL.Scheme + "://" + req.URL.Host + req.URL.Path, status: resp.StatusCode, code: code, message: msg}
	a.mu.Unlock()
	return resp, err
}

// httpClient is the client for all exchanges: e.HTTPClient (or a default one) behind the recorder.
func (e Endpoints) httpClient() *http.Client {
	base := e.HTTPClient
	if base == nil {
		base = &http.Client{Timeout: 30 * time.Second}
	}
	next := base.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	if _, ok := next.(recorder); ok {
		return base
	}
	c := *base
	c.Transport = recorder{next: next}
	return &c
}

// parseAnswer extracts an error code and message from the error formats of the services involved.
func parseAnswer(body []byte) (code, message string) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return "", ""
	}
	if body[0] == '<' {
		var x struct {
			Code    string `xml:"Error>Code"`
			Message string `xml:"Error>Message"`
		}
		if xml.Unmarshal(body, &x) == nil && x.Code != "" {
			return x.Code, x.Message
		}
	}
	if body[0] == '{' {
		var j map[string]json.RawMessage
		if json.Unmarshal(body, &j) == nil {
			var s string
			if raw, ok := j["error"]; ok && json.Unmarshal(raw, &s) == nil {
				var desc string
				_ = json.Unmarshal(j["error_description"], &desc)
				return s, desc
			}
			var g struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
				Status  string `json:"status"`
			}
			if raw, ok := j["error"]; ok && json.Unmarshal(raw, &g) == nil && (g.Status != "" || g.Message != "") {
				return g.Status, g.Message
			}
			var errs []string
			if raw, ok := j["errors"]; ok && json.Unmarshal(raw, &errs) == nil {
				return "", strings.Join(errs, "; ")
			}
			var m string
			if raw, ok := j["message"]; ok && json.Unmarshal(raw, &m) == nil {
				return "", m
			}
		}
	}
	s := string(body)
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return "", strings.TrimSpace(s)
}

// fail builds the *Error for a failed step from the attempt's record and the SDK error.
func fail(dir, step string, a *attempt, err error) error {
	if h := a.home(); h != nil {
		return h // the home token could not be obtained: that error already says everything
	}
	var already *Error
	if errors.As(err, &already) {
		return already
	}
	e := &Error{Direction: dir, Step: step, Err: err}
	presented, ans := a.get()
	e.Presented = presented
	if ans != nil {
		e.Status, e.Code, e.Message = ans.status, ans.code, ans.message
		return e
	}
	fillFromSDK(e, err)
	return e
}

// fillFromSDK takes status, code and message from the SDKs' typed errors when no answer was recorded.
func fillFromSDK(e *Error, err error) {
	var api smithy.APIError
	if errors.As(err, &api) {
		e.Code, e.Message = api.ErrorCode(), api.ErrorMessage()
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		e.Status = re.HTTPStatusCode()
	}
	var me *metadata.Error
	if errors.As(err, &me) {
		e.Status, e.Message = me.Code, strings.TrimSpace(me.Message)
	}
	var ve *vault.ResponseError
	if errors.As(err, &ve) {
		e.Status, e.Message = ve.StatusCode, strings.Join(ve.Errors, "; ")
	}
	if e.Status == 0 && e.Code == "" {
		// cloud.google.com/go/auth reports "credentials: status code N: <body>".
		if m := statusBodyRE.FindStringSubmatch(err.Error()); m != nil {
			e.Status, _ = strconv.Atoi(m[1])
			e.Code, e.Message = parseAnswer([]byte(m[2]))
		}
	}
}

var statusBodyRE = regexp.MustCompile(`(?s)status code (\d{3}): (.*)$`)
