package certmgr_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/acm"

	"github.com/keyferry/keyferry/core/certmgr"
	"github.com/keyferry/keyferry/core/config"
	"github.com/keyferry/keyferry/localtest/moto"
)

// TestACM imports into moto's ACM: a first import, a renewal re-imported onto the same ARN only when
// inside the window, and the inventory listing the certificate as keyferry's.
func TestACM(t *testing.T) {
	ctx := tctx(t)
	srv, err := moto.Start(ctx, moto.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	dir := t.TempDir()
	ca := newCA(t, dir)
	cfg, sts := loadConfig(t, dir, fmt.Sprintf(`stores:
  local: {type: file, path: secrets}
certificates:
%s  specs:
    - name: edge
      common_name: edge.svc.example.com # moto refuses an import without a subject CN
      dns: [edge.svc.example.com]
      ttl: 72h
      targets: [{acm: {region: us-east-1, local: true, endpoint: "%s"}}]
  inventory: {stores: []}
`, ca.issuerYAML(), srv.URL))
	var built []string
	now := &clock{t: time.Now()}
	m, err := certmgr.New(cfg, sts, certmgr.Options{Now: now.Now, Backoff: 10 * time.Millisecond, Clients: certmgr.Clients{
		ACM: func(_ context.Context, a *config.ACMTarget) (*acm.Client, error) {
			built = append(built, a.Region+" "+a.Endpoint)
			return acm.NewFromConfig(moto.Config(a.Endpoint)), nil
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Renew(ctx)
	if err != nil || !res[0].Issued || res[0].Targets[0].Action != certmgr.ActWritten || !strings.HasPrefix(res[0].Targets[0].ID, "arn:aws:acm:us-east-1:") {
		t.Log(tail(srv.Logs(), 3000))
		t.Fatalf("first renewal: %v %+v", err, res)
	}
	arn := res[0].Targets[0].ID
	if res, err = m.Renew(ctx); err != nil || res[0].Issued || res[0].Targets[0].Action != certmgr.ActNotDue {
		t.Fatalf("second renewal: %v %+v", err, res)
	}
	now.Set(time.Now().Add(50 * time.Hour)) // past 2/3 of 72h
	res, err = m.Renew(ctx)
	if err != nil || !res[0].Issued || res[0].Targets[0].Action != certmgr.ActWritten || res[0].Targets[0].ID != arn {
		t.Fatalf("renewal inside the window: %v %+v (first ARN %s)", err, res, arn)
	}
	now.Set(time.Now())
	entries, errs := m.Inventory(ctx)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if len(entries) != 1 || entries[0].Cloud != "aws" || entries[0].Name != arn || !entries[0].Managed || entries[0].KeyType != "ec-p256" ||
		entries[0].Serial != res[0].Serial {
		t.Fatalf("inventory %+v", entries)
	}
	if len(built) != 1 {
		t.Fatalf("ACM clients built %v: want one, reused", built)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
