package inventory

import (
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/acm"
	"github.com/aws/aws-sdk-go-v2/service/acm/types"

	"github.com/keyferry/keyferry/localtest/moto"
)

func startMoto(t *testing.T) *moto.Server {
	t.Helper()
	s, err := moto.Start(tctx(t), moto.Options{})
	if err != nil {
		t.Fatal(err) // never skip: `make moto` installs it
	}
	t.Cleanup(func() { _ = s.Stop() })
	return s
}

// attachToClassicELB creates a classic load balancer with an HTTPS listener on the certificate, so that
// moto lists the balancer in the certificate's InUseBy. The SDK has no ELB client in this module: the
// Query API call is made by hand (moto does not check signatures).
func attachToClassicELB(t *testing.T, endpoint, name, arn string) {
	t.Helper()
	form := url.Values{
		"Action": {"CreateLoadBalancer"}, "Version": {"2012-06-01"}, "LoadBalancerName": {name},
		"AvailabilityZones.member.1":          {"us-east-1a"},
		"Listeners.member.1.Protocol":         {"HTTPS"},
		"Listeners.member.1.LoadBalancerPort": {"443"},
		"Listeners.member.1.InstanceProtocol": {"HTTP"},
		"Listeners.member.1.InstancePort":     {"8080"},
		"Listeners.member.1.SSLCertificateId": {arn},
	}
	req, err := http.NewRequestWithContext(tctx(t), http.MethodPost, endpoint+"/", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/elasticloadbalancing/aws4_request, SignedHeaders=host, Signature=00")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CreateLoadBalancer: %s\n%s", resp.Status, body)
	}
}

func TestACMSource(t *testing.T) {
	srv := startMoto(t)
	client := acm.NewFromConfig(moto.Config(srv.URL))
	p := newTestPKI(t, "acm")
	web := p.issue(t, "web.example.test", "ec-p256", 5*24*time.Hour)
	api := p.issue(t, "api.example.test", "ec-p384", 120*24*time.Hour)
	legacy := p.issue(t, "legacy.example.test", "rsa-2048", 45*24*time.Hour)

	imp := func(b []byte, key, chain []byte, tags ...types.Tag) string {
		out, err := client.ImportCertificate(tctx(t), &acm.ImportCertificateInput{Certificate: b, PrivateKey: key, CertificateChain: chain, Tags: tags})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.CertificateArn)
	}
	webARN := imp(web.CertPEM, web.KeyPEM, web.ChainPEM, types.Tag{Key: aws.String(ManagedTag), Value: aws.String("web")},
		types.Tag{Key: aws.String("team"), Value: aws.String("edge")})
	apiARN := imp(api.CertPEM, api.KeyPEM, api.ChainPEM)
	legacyARN := imp(legacy.CertPEM, legacy.KeyPEM, nil) // no chain uploaded
	attachToClassicELB(t, srv.URL, "web-lb", webARN)

	src := ACMSource{Client: client}
	if src.Name() != "acm us-east-1" {
		t.Fatalf("name %q", src.Name())
	}
	entries, err := Collect(tctx(t), Options{Roots: p.roots()}, src)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 {
		t.Fatalf("%d entries, want 3 (every key type listed): %+v", len(entries), entries)
	}
	got := byName(entries)
	w, a, l := got[webARN], got[apiARN], got[legacyARN]
	if w.Cloud != "aws" || w.Location != "us-east-1" || w.Subject != "CN=web.example.test" || !w.Managed ||
		w.KeyType != "ec-p256" || w.Serial != web.Serial || !slices.Equal(kinds(w), []string{KindExpiring7}) {
		t.Errorf("web: %+v", w)
	}
	if len(w.InUse) != 1 || !strings.Contains(w.InUse[0], "web-lb") {
		t.Errorf("web in use by %v, want the load balancer", w.InUse)
	}
	if a.Managed || a.KeyType != "ec-p384" || len(a.InUse) != 0 || len(a.Findings) != 0 {
		t.Errorf("api: %+v", a)
	}
	// The legacy certificate was imported without its chain: ACM holds nothing to build it from.
	if l.KeyType != "rsa-2048" || !slices.Equal(kinds(l), []string{KindExpiring60, KindUntrustedChain}) {
		t.Errorf("legacy: %+v", l)
	}
	if entries[0].Name != webARN || entries[2].Name != apiARN {
		t.Errorf("not sorted by expiry")
	}
}
