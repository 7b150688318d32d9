// Package events makes the local cloud emit what the real clouds emit when a secret changes. Trail stands
// in front of moto and turns the Secrets Manager and SSM calls that pass through it into the EventBridge
// events AWS would deliver: "AWS API Call via CloudTrail" (the value fields left out, as CloudTrail leaves
// them out), the native "Secret Label Updated" when AWSCURRENT moves, and "Parameter Store Change".
// The Azure Key Vault emulator publishes its own Event Grid events (azkv.Options.Events) and the Secret
// Manager emulator its Pub/Sub notifications (gcp.Notifier).
package events

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Account is the AWS account id events name (moto's default account).
const Account = "123456789012"

// Trail is a running proxy.
type Trail struct {
	URL string // http://127.0.0.1:PORT: point the AWS SDK here

	srv  *http.Server
	sink func(event []byte)

	mu      sync.Mutex
	emitted int
	paused  bool
}

// StartTrail proxies to target (moto's URL) and calls sink with every event, in call order, before the
// caller sees the answer (so a test that made a write can wait for its event without sleeping).
func StartTrail(target string, sink func(event []byte)) (*Trail, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("trail target %q: %w", target, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	t := &Trail{URL: "http://" + ln.Addr().String(), sink: sink}
	rp := httputil.NewSingleHostReverseProxy(u)
	t.srv = &http.Server{Handler: t.handler(rp), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = t.srv.Serve(ln) }()
	return t, nil
}

// Close stops the proxy.
func (t *Trail) Close() error { return t.srv.Close() }

// Emitted is how many events the trail has sent.
func (t *Trail) Emitted() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.emitted
}

// Pause stops (true) or resumes (false) event delivery, as a lost EventBridge delivery would: calls still
// pass through, their events are dropped. Sweeps must then find the changes.
func (t *Trail) Pause(p bool) {
	t.mu.Lock()
	t.paused = p
	t.mu.Unlock()
}

type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(s int) { r.status = s; r.ResponseWriter.WriteHeader(s) }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}

func (t *Trail) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target := r.Header.Get("X-Amz-Target")
		svc, op, _ := strings.Cut(target, ".")
		if svc != "secretsmanager" && svc != "AmazonSSM" {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := &recorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		call := apiCall{op: op, region: region(r.Header.Get("Authorization")), status: rec.status,
			errType: rec.Header().Get("X-Amzn-Errortype"), req: body, resp: rec.body.Bytes()}
		var evs [][]byte
		if svc == "secretsmanager" {
			evs = call.secretsManager()
		} else {
			evs = call.ssm()
		}
		t.mu.Lock()
		paused := t.paused
		if !paused {
			t.emitted += len(evs)
		}
		t.mu.Unlock()
		if paused {
			return
		}
		for _, e := range evs {
			t.sink(e)
		}
	})
}

var credentialRegion = regexp.MustCompile(`Credential=[^/]+/\d{8}/([a-z0-9-]+)/`)

// region reads the region from the SigV4 credential scope.
func region(auth string) string {
	if m := credentialRegion.FindStringSubmatch(auth); m != nil {
		return m[1]
	}
	return "us-east-1"
}

type apiCall struct {
	op, region, errType string
	status              int
	req, resp           []byte
}

// Writes CloudTrail records for Secrets Manager (the read APIs are data events EventBridge does not see by
// default).
var secretsManagerWrites = map[string]bool{
	"CreateSecret": true, "PutSecretValue": true, "UpdateSecret": true, "UpdateSecretVersionStage": true,
	"DeleteSecret": true, "RestoreSecret": true, "RotateSecret": true, "CancelRotateSecret": true,
	"TagResource": true, "UntagResource": true, "PutResourcePolicy": true, "DeleteResourcePolicy": true,
}

// valueFields are what CloudTrail never records.
var valueFields = map[string]bool{"SecretString": true, "SecretBinary": true, "Value": true}

func (c apiCall) secretsManager() [][]byte {
	if !secretsManagerWrites[c.op] {
		return nil
	}
	req := objectOf(c.req)
	detail := map[string]any{
		"eventVersion": "1.08", "eventSource": "secretsmanager.amazonaws.com", "eventName": c.op,
		"awsRegion": c.region, "eventType": "AwsApiCall", "managementEvent": true, "eventCategory": "Management",
		"recipientAccountId": Account, "eventID": newID(), "eventTime": now(),
		"userIdentity":      map[string]any{"type": "AssumedRole", "accountId": Account},
		"requestParameters": camel(req),
	}
	ok := c.status >= 200 && c.status < 300
	resp := objectOf(c.resp)
	if ok {
		detail["responseElements"] = camel(resp)
	} else {
		code := c.errType
		if i := strings.IndexAny(code, ":#"); i >= 0 {
			code = code[:i]
		}
		if code == "" {
			code, _ = resp["__type"].(string)
			code = code[strings.LastIndex(code, "#")+1:]
		}
		detail["errorCode"] = code
		if m, _ := resp["message"].(string); m != "" {
			detail["errorMessage"] = m
		}
		detail["responseElements"] = nil
	}
	evs := [][]byte{c.envelope("aws.secretsmanager", "AWS API Call via CloudTrail", nil, detail)}
	if !ok {
		return evs
	}
	// The native event for AWSCURRENT moving to a new version.
	arn, _ := resp["ARN"].(string)
	name, _ := resp["Name"].(string)
	version, _ := resp["VersionId"].(string)
	moved := false
	switch c.op {
	case "CreateSecret", "UpdateSecret":
		_, s := req["SecretString"]
		_, b := req["SecretBinary"]
		moved = (s || b) && version != ""
	case "PutSecretValue":
		stages, has := req["VersionStages"].([]any)
		moved = !has || contains(stages, "AWSCURRENT")
	case "UpdateSecretVersionStage":
		if st, _ := req["VersionStage"].(string); st == "AWSCURRENT" {
			version, _ = req["MoveToVersionId"].(string)
			moved = version != ""
		}
	}
	if moved && name != "" {
		var res []string
		if arn != "" {
			res = []string{arn}
		}
		evs = append(evs, c.envelope("aws.secretsmanager", "Secret Label Updated", res,
			map[string]any{"name": name, "labelUpdated": "AWSCURRENT", "versionId": version}))
	}
	return evs
}

func (c apiCall) ssm() [][]byte {
	if c.status < 200 || c.status >= 300 {
		return nil // Parameter Store Change is sent for changes only
	}
	req, resp := objectOf(c.req), objectOf(c.resp)
	var names []string
	op := ""
	switch c.op {
	case "PutParameter":
		n, _ := req["Name"].(string)
		names, op = []string{n}, "Update"
		if v, _ := resp["Version"].(float64); v == 1 {
			op = "Create"
		}
	case "DeleteParameter":
		n, _ := req["Name"].(string)
		names, op = []string{n}, "Delete"
	case "DeleteParameters":
		op = "Delete"
		for _, n := range asList(resp["DeletedParameters"]) {
			if s, ok := n.(string); ok {
				names = append(names, s)
			}
		}
	case "LabelParameterVersion":
		n, _ := req["Name"].(string)
		names, op = []string{n}, "LabelParameterVersion"
	default:
		return nil
	}
	var evs [][]byte
	for _, n := range names {
		typ, _ := req["Type"].(string)
		arn := fmt.Sprintf("arn:aws:ssm:%s:%s:parameter/%s", c.region, Account, strings.TrimPrefix(n, "/"))
		evs = append(evs, c.envelope("aws.ssm", "Parameter Store Change", []string{arn},
			map[string]any{"operation": op, "name": n, "type": typ, "description": ""}))
	}
	return evs
}

func (c apiCall) envelope(source, detailType string, resources []string, detail map[string]any) []byte {
	if resources == nil {
		resources = []string{}
	}
	b, _ := json.Marshal(map[string]any{
		"version": "0", "id": newID(), "detail-type": detailType, "source": source, "account": Account,
		"time": now(), "region": c.region, "resources": resources, "detail": detail,
	})
	return b
}

func objectOf(b []byte) map[string]any {
	var m map[string]any
	if json.Unmarshal(b, &m) != nil || m == nil {
		return map[string]any{}
	}
	return m
}

// camel renders a request or response the way CloudTrail records it: lower camel case keys, no value
// fields.
func camel(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if valueFields[k] || k == "" {
			continue
		}
		key := strings.ToLower(k[:1]) + k[1:]
		if strings.ToUpper(k) == k { // ARN → arn
			key = strings.ToLower(k)
		}
		out[key] = v
	}
	return out
}

func contains(list []any, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func asList(v any) []any { l, _ := v.([]any); return l }

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func now() string { return time.Now().UTC().Format(time.RFC3339) }
