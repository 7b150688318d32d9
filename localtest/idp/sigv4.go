package idp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

const (
	sigv4Algorithm  = "AWS4-HMAC-SHA256"
	amzDateFormat   = "20060102T150405Z"
	sigv4MaxSkew    = 15 * time.Minute
	sigv4Terminator = "aws4_request"
)

// sigv4Auth is a parsed "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=..." header.
type sigv4Auth struct {
	AccessKeyID   string
	Date          string // yyyymmdd from the credential scope
	Region        string
	Service       string
	SignedHeaders []string
	Signature     string
}

func (a *sigv4Auth) scope() string {
	return a.Date + "/" + a.Region + "/" + a.Service + "/" + sigv4Terminator
}

func parseSigV4(h string) (*sigv4Auth, error) {
	alg, rest, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || alg != sigv4Algorithm {
		return nil, fmt.Errorf("authorization header does not use %s", sigv4Algorithm)
	}
	a := &sigv4Auth{}
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("authorization header component %q is not key=value", part)
		}
		switch k {
		case "Credential":
			f := strings.Split(v, "/")
			if len(f) != 5 || f[4] != sigv4Terminator {
				return nil, fmt.Errorf("credential %q is not AKID/date/region/service/aws4_request", v)
			}
			a.AccessKeyID, a.Date, a.Region, a.Service = f[0], f[1], f[2], f[3]
		case "SignedHeaders":
			a.SignedHeaders = strings.Split(v, ";")
		case "Signature":
			a.Signature = v
		}
	}
	if a.AccessKeyID == "" || len(a.SignedHeaders) == 0 || a.Signature == "" {
		return nil, errors.New("authorization header lacks Credential, SignedHeaders or Signature")
	}
	return a, nil
}

// sigv4Verify recomputes the signature of r (whose body was already read into body) with secret and
// compares it with the one in the Authorization header, as AWS does. now is the server clock.
func sigv4Verify(r *http.Request, body []byte, a *sigv4Auth, secret string, now time.Time) error {
	amzDate := r.Header.Get("X-Amz-Date")
	if amzDate == "" {
		return errors.New("the request has no X-Amz-Date header")
	}
	t, err := time.Parse(amzDateFormat, amzDate)
	if err != nil {
		return fmt.Errorf("X-Amz-Date %q is not %s", amzDate, amzDateFormat)
	}
	if d := now.Sub(t); d > sigv4MaxSkew || d < -sigv4MaxSkew {
		return fmt.Errorf("signature expired: %s is not within 15 minutes of %s", amzDate, now.UTC().Format(amzDateFormat))
	}
	if !strings.HasPrefix(amzDate, a.Date) {
		return fmt.Errorf("credential scope date %s does not match X-Amz-Date %s", a.Date, amzDate)
	}
	signed := map[string]bool{}
	for _, h := range a.SignedHeaders {
		signed[h] = true
	}
	if !signed["host"] || !signed["x-amz-date"] {
		return errors.New("SignedHeaders must include host and x-amz-date")
	}
	var ch strings.Builder
	for _, name := range a.SignedHeaders {
		var vals []string
		switch name {
		case "host":
			vals = []string{r.Host}
		default:
			vals = r.Header.Values(name)
			if len(vals) == 0 && name == "content-length" && r.ContentLength >= 0 {
				vals = []string{strconv.FormatInt(r.ContentLength, 10)}
			}
		}
		for i, v := range vals {
			vals[i] = strings.Join(strings.Fields(v), " ")
		}
		ch.WriteString(name + ":" + strings.Join(vals, ",") + "\n")
	}
	payload := r.Header.Get("X-Amz-Content-Sha256")
	if payload == "" {
		sum := sha256.Sum256(body)
		payload = hex.EncodeToString(sum[:])
	}
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	canonical := strings.Join([]string{r.Method, path, canonicalQuery(r.URL.Query()), ch.String(),
		strings.Join(a.SignedHeaders, ";"), payload}, "\n")
	sum := sha256.Sum256([]byte(canonical))
	toSign := sigv4Algorithm + "\n" + amzDate + "\n" + a.scope() + "\n" + hex.EncodeToString(sum[:])
	key := []byte("AWS4" + secret)
	for _, s := range []string{a.Date, a.Region, a.Service, sigv4Terminator, toSign} {
		key = hmacSHA256(key, s)
	}
	if !hmac.Equal([]byte(hex.EncodeToString(key)), []byte(strings.ToLower(a.Signature))) {
		return errors.New("the request signature we calculated does not match the signature you provided")
	}
	return nil
}

func hmacSHA256(key []byte, s string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return m.Sum(nil)
}

func canonicalQuery(q url.Values) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		vs := append([]string(nil), q[k]...)
		sort.Strings(vs)
		for _, v := range vs {
			parts = append(parts, awsEscape(k)+"="+awsEscape(v))
		}
	}
	return strings.Join(parts, "&")
}

func awsEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}
