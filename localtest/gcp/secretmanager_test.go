package gcp

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"golang.org/x/oauth2"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/keyferry/keyferry/localtest/fault"
	"github.com/keyferry/keyferry/localtest/oidc"
)

const proj = "projects/kf-emu"

func startSM(t *testing.T, opts SecretManagerOptions) (*SecretManager, *secretmanager.Client) {
	t.Helper()
	sm, err := StartSecretManager(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sm.Stop)
	c, err := secretmanager.NewClient(context.Background(), sm.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return sm, c
}

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func wantCode(t *testing.T, what string, err error, c codes.Code) {
	t.Helper()
	if got := status.Code(err); got != c {
		t.Fatalf("%s: got %v (%v), want %v", what, got, err, c)
	}
}

func mask(p ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: p} }

func create(t *testing.T, c *secretmanager.Client, id string, s *secretmanagerpb.Secret) *secretmanagerpb.Secret {
	t.Helper()
	if s == nil {
		s = &secretmanagerpb.Secret{}
	}
	out, err := c.CreateSecret(tctx(t), &secretmanagerpb.CreateSecretRequest{Parent: proj, SecretId: id, Secret: s})
	if err != nil {
		t.Fatalf("CreateSecret(%s): %v", id, err)
	}
	return out
}

func addVersion(t *testing.T, c *secretmanager.Client, parent string, data []byte) *secretmanagerpb.SecretVersion {
	t.Helper()
	v, err := c.AddSecretVersion(tctx(t), &secretmanagerpb.AddSecretVersionRequest{Parent: parent,
		Payload: &secretmanagerpb.SecretPayload{Data: data}})
	if err != nil {
		t.Fatalf("AddSecretVersion: %v", err)
	}
	return v
}

// TestEtags: every update renews the etag (the emulator alone repeats it), AddSecretVersion does not,
// and a stale etag is refused with FAILED_PRECONDITION as the service does.
func TestEtags(t *testing.T) {
	_, c := startSM(t, SecretManagerOptions{})
	ctx := tctx(t)
	s := create(t, c, "etags", &secretmanagerpb.Secret{Labels: map[string]string{"a": "1"}})
	e0 := s.GetEtag()
	if !strings.HasPrefix(e0, `"`) || !strings.HasSuffix(e0, `"`) {
		t.Fatalf("etag %s is not quoted", e0)
	}
	addVersion(t, c, s.GetName(), []byte("x"))
	if g, _ := c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: s.GetName()}); g.GetEtag() != e0 {
		t.Fatalf("AddSecretVersion changed the secret etag")
	}
	u1, err := c.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{Secret: &secretmanagerpb.Secret{Name: s.GetName(),
		Labels: map[string]string{"a": "2"}, Etag: e0}, UpdateMask: mask("labels")})
	if err != nil {
		t.Fatal(err)
	}
	u2, err := c.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{Secret: &secretmanagerpb.Secret{Name: s.GetName(),
		Labels: map[string]string{"a": "2"}, Etag: u1.GetEtag()}, UpdateMask: mask("labels")})
	if err != nil {
		t.Fatal(err)
	}
	if u1.GetEtag() == e0 || u2.GetEtag() == u1.GetEtag() {
		t.Fatalf("etags did not change on update: %s %s %s", e0, u1.GetEtag(), u2.GetEtag())
	}
	_, err = c.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{Secret: &secretmanagerpb.Secret{Name: s.GetName(),
		Labels: map[string]string{"a": "3"}, Etag: u1.GetEtag()}, UpdateMask: mask("labels")})
	wantCode(t, "update with a stale etag", err, codes.FailedPrecondition)
	err = c.DeleteSecret(ctx, &secretmanagerpb.DeleteSecretRequest{Name: s.GetName(), Etag: e0})
	wantCode(t, "delete with a stale etag", err, codes.FailedPrecondition)

	v, err := c.GetSecretVersion(ctx, &secretmanagerpb.GetSecretVersionRequest{Name: s.GetName() + "/versions/1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DisableSecretVersion(ctx, &secretmanagerpb.DisableSecretVersionRequest{Name: v.GetName(), Etag: v.GetEtag()}); err != nil {
		t.Fatalf("disable with the current version etag: %v", err)
	}
	_, err = c.EnableSecretVersion(ctx, &secretmanagerpb.EnableSecretVersionRequest{Name: v.GetName(), Etag: v.GetEtag()})
	wantCode(t, "enable with a stale version etag", err, codes.FailedPrecondition)

	if err := c.DeleteSecret(ctx, &secretmanagerpb.DeleteSecretRequest{Name: s.GetName(), Etag: u2.GetEtag()}); err != nil {
		t.Fatalf("delete with the current etag: %v", err)
	}
	_, err = c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: s.GetName()})
	wantCode(t, "get after delete", err, codes.NotFound)
	create(t, c, "etags", nil) // the name is free again at once
}

// TestMetadata: labels, annotations, topics and rotation are kept and replaced exactly; the rules are
// enforced; replication is immutable.
func TestMetadata(t *testing.T) {
	_, c := startSM(t, SecretManagerOptions{})
	ctx := tctx(t)
	topic := &secretmanagerpb.Topic{Name: "projects/kf-emu/topics/events"}
	s := create(t, c, "meta", &secretmanagerpb.Secret{Labels: map[string]string{"a": "1", "b": "2"},
		Annotations: map[string]string{"keyferry-source-store": "x"}, Topics: []*secretmanagerpb.Topic{topic}})
	if len(s.GetTopics()) != 1 || s.GetTopics()[0].GetName() != topic.GetName() || s.GetAnnotations()["keyferry-source-store"] != "x" {
		t.Fatalf("created secret %v", s)
	}
	u, err := c.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{Secret: &secretmanagerpb.Secret{Name: s.GetName()},
		UpdateMask: mask("labels")})
	if err != nil {
		t.Fatal(err)
	}
	if len(u.GetLabels()) != 0 || len(u.GetAnnotations()) != 1 || len(u.GetTopics()) != 1 {
		t.Fatalf("clearing labels: %v", u)
	}
	for what, req := range map[string]*secretmanagerpb.UpdateSecretRequest{
		"replication": {Secret: &secretmanagerpb.Secret{Name: s.GetName()}, UpdateMask: mask("replication")},
		"unknown":     {Secret: &secretmanagerpb.Secret{Name: s.GetName()}, UpdateMask: mask("colour")},
		"no mask":     {Secret: &secretmanagerpb.Secret{Name: s.GetName()}},
		"bad label":   {Secret: &secretmanagerpb.Secret{Name: s.GetName(), Labels: map[string]string{"Team": "x"}}, UpdateMask: mask("labels")},
		"bad annotation": {Secret: &secretmanagerpb.Secret{Name: s.GetName(), Annotations: map[string]string{"-x": "y"}},
			UpdateMask: mask("annotations")},
		"huge annotations": {Secret: &secretmanagerpb.Secret{Name: s.GetName(), Annotations: map[string]string{"x": strings.Repeat("y", 16*1024)}},
			UpdateMask: mask("annotations")},
		"rotation without topics": {Secret: &secretmanagerpb.Secret{Name: s.GetName(), Rotation: &secretmanagerpb.Rotation{}},
			UpdateMask: mask("topics", "rotation")},
	} {
		_, err := c.UpdateSecret(ctx, req)
		wantCode(t, "update "+what, err, codes.InvalidArgument)
	}
	for id, sec := range map[string]*secretmanagerpb.Secret{
		"bad.id":         {},
		"too-many-tpcs":  {Topics: manyTopics(11)},
		"bad-topic":      {Topics: []*secretmanagerpb.Topic{{Name: "events"}}},
		"no-replicas":    {Replication: &secretmanagerpb.Replication{Replication: &secretmanagerpb.Replication_UserManaged_{UserManaged: &secretmanagerpb.Replication_UserManaged{}}}},
		"label-too-long": {Labels: map[string]string{"k": strings.Repeat("v", 64)}},
	} {
		_, err := c.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{Parent: proj, SecretId: id, Secret: sec})
		wantCode(t, "create "+id, err, codes.InvalidArgument)
	}
	_, err = c.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{Parent: proj, SecretId: "meta", Secret: &secretmanagerpb.Secret{}})
	wantCode(t, "duplicate create", err, codes.AlreadyExists)
}

func manyTopics(n int) []*secretmanagerpb.Topic {
	var out []*secretmanagerpb.Topic
	for i := 0; i < n; i++ {
		out = append(out, &secretmanagerpb.Topic{Name: fmt.Sprintf("projects/p/topics/t%d", i)})
	}
	return out
}

// TestVersions: latest is the newest version whatever its state, access returns the CRC32C, payloads
// over 64 KiB are refused, bad checksums are refused.
func TestVersions(t *testing.T) {
	_, c := startSM(t, SecretManagerOptions{})
	ctx := tctx(t)
	s := create(t, c, "vers", nil)
	_, err := c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: s.GetName() + "/versions/latest"})
	wantCode(t, "latest of a secret without versions", err, codes.NotFound)
	addVersion(t, c, s.GetName(), []byte("one"))
	v2 := addVersion(t, c, s.GetName(), []byte("two"))
	if _, err := c.DisableSecretVersion(ctx, &secretmanagerpb.DisableSecretVersionRequest{Name: v2.GetName()}); err != nil {
		t.Fatal(err)
	}
	_, err = c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: s.GetName() + "/versions/latest"})
	wantCode(t, "latest when the newest version is disabled", err, codes.FailedPrecondition)
	lv, err := c.GetSecretVersion(ctx, &secretmanagerpb.GetSecretVersionRequest{Name: s.GetName() + "/versions/latest"})
	if err != nil || lv.GetName() != v2.GetName() || lv.GetState() != secretmanagerpb.SecretVersion_DISABLED {
		t.Fatalf("GetSecretVersion(latest) = %v, %v", lv, err)
	}
	r, err := c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: s.GetName() + "/versions/1"})
	if err != nil {
		t.Fatal(err)
	}
	if crc := int64(crc32.Checksum([]byte("one"), crc32.MakeTable(crc32.Castagnoli))); r.GetPayload().DataCrc32C == nil || *r.GetPayload().DataCrc32C != crc {
		t.Fatalf("access returned crc %v, want %d", r.GetPayload().DataCrc32C, crc)
	}
	if _, err := c.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{Parent: s.GetName(),
		Payload: &secretmanagerpb.SecretPayload{Data: make([]byte, 65536)}}); err != nil {
		t.Fatalf("64 KiB payload: %v", err)
	}
	_, err = c.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{Parent: s.GetName(),
		Payload: &secretmanagerpb.SecretPayload{Data: make([]byte, 65537)}})
	wantCode(t, "payload over 64 KiB", err, codes.InvalidArgument)
	bad := int64(1)
	_, err = c.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{Parent: s.GetName(),
		Payload: &secretmanagerpb.SecretPayload{Data: []byte("x"), DataCrc32C: &bad}})
	wantCode(t, "wrong data_crc32c", err, codes.DataLoss)

	var names []string
	it := c.ListSecretVersions(ctx, &secretmanagerpb.ListSecretVersionsRequest{Parent: s.GetName(), PageSize: 2})
	for {
		v, err := it.Next()
		if err == iterator.Done {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, v.GetName()[strings.LastIndex(v.GetName(), "/")+1:])
	}
	if strings.Join(names, ",") != "3,2,1" {
		t.Fatalf("versions %v, want newest first", names)
	}
}

// TestListSecrets: sorted by name, paged with stable tokens, conjunctive filters, bad filters refused.
func TestListSecrets(t *testing.T) {
	layer := fault.New(1, 1)
	_, c := startSM(t, SecretManagerOptions{Fault: layer})
	ctx := tctx(t)
	for i := 6; i >= 0; i-- { // created in reverse order: the listing must still come sorted by name
		labels := map[string]string{"batch": "b"}
		if i%2 == 0 {
			labels["parity"] = "even"
		}
		create(t, c, fmt.Sprintf("list-%02d", i), &secretmanagerpb.Secret{Labels: labels})
	}
	create(t, c, "other-03", &secretmanagerpb.Secret{Labels: map[string]string{"parity": "even"}})

	list := func(filter string, pageSize int32) []string {
		t.Helper()
		var out []string
		it := c.ListSecrets(ctx, &secretmanagerpb.ListSecretsRequest{Parent: proj, Filter: filter, PageSize: pageSize})
		for {
			s, err := it.Next()
			if err == iterator.Done {
				return out
			}
			if err != nil {
				t.Fatalf("ListSecrets(%q): %v", filter, err)
			}
			out = append(out, s.GetName()[strings.LastIndex(s.GetName(), "/")+1:])
		}
	}
	before := layer.Count("secretmanager:ListSecrets")
	got := list(`name:"list-"`, 3)
	if strings.Join(got, ",") != "list-00,list-01,list-02,list-03,list-04,list-05,list-06" {
		t.Fatalf("paged listing %v", got)
	}
	if pages := layer.Count("secretmanager:ListSecrets") - before; pages != 3 {
		t.Fatalf("7 secrets at 3 a page took %d calls, want 3", pages)
	}
	for filter, want := range map[string]string{
		`name:list AND labels.parity="even"`: "list-00,list-02,list-04,list-06",
		`labels.parity=even`:                 "list-00,list-02,list-04,list-06,other-03",
		`labels.parity:*`:                    "list-00,list-02,list-04,list-06,other-03",
		`name:03`:                            "list-03,other-03",
		`name:LIST-0*5`:                      "list-05",
		`labels.batch=b labels.parity=even`:  "list-00,list-02,list-04,list-06",
		`labels.missing=x`:                   "",
	} {
		if got := strings.Join(list(filter, 2), ","); got != want {
			t.Errorf("filter %s: %s, want %s", filter, got, want)
		}
	}
	for _, bad := range []string{`name:a OR name:b`, `create_time>2021-01-01`, `name:"open`, `NOT labels.a=b`} {
		_, err := c.ListSecrets(ctx, &secretmanagerpb.ListSecretsRequest{Parent: proj, Filter: bad}).Next()
		wantCode(t, "filter "+bad, err, codes.InvalidArgument)
	}
}

// TestFaultLayerAndInterceptors: the fault layer is in front (throttles with RetryInfo, counts), the
// caller's interceptors run after it and see each call's Change, and DenyToken refuses its token.
func TestFaultLayerAndInterceptors(t *testing.T) {
	layer := fault.New(1, 7)
	var mu sync.Mutex
	var changes []*Change
	var seen []string
	record := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		resp, err := h(ctx, req)
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:])
		if ch := ChangeFrom(ctx); ch != nil {
			changes = append(changes, ch)
		}
		return resp, err
	}
	sm, c := startSM(t, SecretManagerOptions{Fault: layer, Interceptors: []grpc.UnaryServerInterceptor{DenyToken("nope"), record}})
	ctx := tctx(t)

	layer.SetRules(fault.Rule{API: "secretmanager:GetSecret", Throttle: 1, RetryAfter: 3 * time.Second})
	_, err := c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: proj + "/secrets/x"})
	wantCode(t, "throttled GetSecret", err, codes.ResourceExhausted)
	st, _ := status.FromError(err)
	var delay time.Duration
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			delay = ri.GetRetryDelay().AsDuration()
		}
	}
	if delay != 3*time.Second {
		t.Fatalf("RetryInfo delay %s, want 3s", delay)
	}
	layer.SetRules()

	topic := &secretmanagerpb.Topic{Name: "projects/kf-emu/topics/events"}
	s := create(t, c, "icpt", &secretmanagerpb.Secret{Topics: []*secretmanagerpb.Topic{topic}})
	addVersion(t, c, s.GetName(), []byte("v"))
	if _, err := c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: s.GetName() + "/versions/1"}); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteSecret(ctx, &secretmanagerpb.DeleteSecretRequest{Name: s.GetName()}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if strings.Join(seen, ",") != "CreateSecret,AddSecretVersion,AccessSecretVersion,DeleteSecret" {
		t.Errorf("interceptor saw %v (a throttled call must not reach it)", seen)
	}
	var got []string
	for _, ch := range changes {
		got = append(got, fmt.Sprintf("%s:%d:%v:%v", ch.Method, len(ch.Secret.GetTopics()), ch.Version != nil, ch.TopicsChanged))
	}
	mu.Unlock()
	if strings.Join(got, " ") != "CreateSecret:1:false:true AddSecretVersion:1:true:false DeleteSecret:1:false:false" {
		t.Errorf("changes %v", got)
	}
	if n := layer.Count("secretmanager:*"); n != 5 {
		t.Errorf("fault layer counted %d calls, want 5: %v", n, layer.Calls())
	}

	denied, err := secretmanager.NewClient(ctx, sm.ClientOptionsWithToken("nope")...)
	if err != nil {
		t.Fatal(err)
	}
	defer denied.Close()
	_, err = denied.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: proj + "/secrets/x"})
	wantCode(t, "denied token", err, codes.PermissionDenied)
}

func TestGatewayAndStop(t *testing.T) {
	sm, c := startSM(t, SecretManagerOptions{Gateway: true})
	create(t, c, "rest", &secretmanagerpb.Secret{Labels: map[string]string{"via": "grpc"}})
	if !strings.HasPrefix(sm.GatewayURL(), "http://127.0.0.1:") || !strings.HasPrefix(sm.Addr(), "127.0.0.1:") {
		t.Fatalf("addresses %s %s", sm.Addr(), sm.GatewayURL())
	}
	resp, err := http.Get(sm.GatewayURL() + "/v1/" + proj + "/secrets/rest")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var got struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
		Etag   string            `json:"etag"`
	}
	if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != 200 {
		t.Fatalf("REST get: %d %s %v", resp.StatusCode, body, err)
	}
	if got.Name != proj+"/secrets/rest" || got.Labels["via"] != "grpc" || got.Etag == "" {
		t.Fatalf("REST get returned %s", body)
	}
	addr, gw := sm.Addr(), strings.TrimPrefix(sm.GatewayURL(), "http://")
	sm.Stop()
	sm.Stop() // idempotent
	for _, a := range []string{addr, gw} {
		if conn, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			conn.Close()
			t.Errorf("%s still accepts connections after Stop", a)
		}
	}
}

// TestTLSAndAuthenticate: with TLS and Authenticate, calls carry the client's per-RPC token as at the
// service; a missing or refused token fails with UNAUTHENTICATED without echoing it; callers are counted
// per principal; a plaintext client cannot connect.
func TestTLSAndAuthenticate(t *testing.T) {
	ca, err := oidc.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := ca.ServerTLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	const good, bad = "ya29.good-token-of-the-replicator", "ya29.token-nobody-issued"
	sm, err := StartSecretManager(SecretManagerOptions{TLS: tlsCfg, Authenticate: func(_ context.Context, tok string) (string, error) {
		if tok == good {
			return "replicator", nil
		}
		return "", errors.New("not a token this test issued")
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sm.Stop)
	client := func(auth ...option.ClientOption) *secretmanager.Client {
		opts := append([]option.ClientOption{option.WithEndpoint(sm.Addr()),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: ca.CertPool(), MinVersion: tls.VersionTLS12})))}, auth...)
		c, err := secretmanager.NewClient(tctx(t), opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	token := func(tok string) option.ClientOption {
		return option.WithTokenSource(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: tok, TokenType: "Bearer"}))
	}
	create(t, client(token(good)), "tls-ok", nil)
	for _, tc := range []struct {
		name string
		c    *secretmanager.Client
		msg  string
	}{
		{"a token nobody issued", client(token(bad)), "invalid authentication credentials"},
		{"no token", client(option.WithoutAuthentication()), "missing required authentication credential"},
	} {
		_, err := tc.c.GetSecret(tctx(t), &secretmanagerpb.GetSecretRequest{Name: proj + "/secrets/tls-ok"})
		wantCode(t, tc.name, err, codes.Unauthenticated)
		if !strings.Contains(err.Error(), tc.msg) || strings.Contains(err.Error(), "ya29.") || strings.Contains(sm.Logs(), "ya29.") {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	plain, err := secretmanager.NewClient(tctx(t), sm.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	ctx, cancel := context.WithTimeout(tctx(t), 3*time.Second)
	defer cancel()
	if _, err := plain.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: proj + "/secrets/tls-ok"}); status.Code(err) != codes.Unavailable && status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("a plaintext client: %v", err)
	}
	callers, refused := sm.Callers()
	if callers["replicator"] != 1 || len(callers) != 1 || refused != 2 {
		t.Errorf("callers %v, refused %d; want replicator:1 and 2 refused", callers, refused)
	}
	if _, err := StartSecretManager(SecretManagerOptions{TLS: tlsCfg, Gateway: true}); err == nil {
		t.Error("a REST gateway in front of a TLS server was accepted")
	}
}
