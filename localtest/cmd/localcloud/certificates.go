package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/keyferry/keyferry/core/certmgr"
	"github.com/keyferry/keyferry/core/config"
	"github.com/keyferry/keyferry/core/inventory"
	"github.com/keyferry/keyferry/core/pki"
	"github.com/keyferry/keyferry/core/pki/kmssigner"
	"github.com/keyferry/keyferry/core/stores"
	"github.com/keyferry/keyferry/localtest/cloud"
	"github.com/keyferry/keyferry/localtest/gcpcert"
	"github.com/keyferry/keyferry/localtest/moto"
)

// certificateDemo makes an offline root and an intermediate whose key is held in AWS KMS (moto), issues one short-lived certificate from the
// built-in CA into every cloud's native form (Secrets Manager JSON, ACM, Key Vault certificates, Secret
// Manager JSON, Certificate Manager, Vault KV), renews it at 2/3 of its life (same ACM ARN, a new Key
// Vault version) and prints the inventory. Private keys are never printed.
func certificateDemo(ctx context.Context, out io.Writer, c *cloud.Cloud) error {
	fmt.Fprintln(out, "\n== certificates: one CA, every cloud's native form ==")
	dir := filepath.Join(c.Dir, "ca")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	files, keyARN, err := makeCA(ctx, dir, c.Moto.URL)
	if err != nil {
		return fmt.Errorf("making the demo CA: %w", err)
	}
	cm, err := gcpcert.Start(gcpcert.Options{})
	if err != nil {
		return fmt.Errorf("starting the Certificate Manager emulator: %w", err)
	}
	defer cm.Stop()
	kvCA := filepath.Join(c.Dir, "keyvault-certificates-ca.pem")
	if err := os.WriteFile(kvCA, c.KeyVault.CACertPEM(), 0o600); err != nil {
		return err
	}

	y := c.Config() + fmt.Sprintf(`certificates:
  issuer:
    builtin: {certificate: %[1]s, chain: %[2]s, key: {aws_kms: {key_id: %[3]q, local: true, endpoint: %[5]q}}}
  policy: {allowed_domains: ["*.demo.keyferry.internal"], allowed_uris: ["spiffe://demo.keyferry.internal/"], max_ttl: 168h, key_types: [ec-p256]}
  specs:
    - name: payments-api
      common_name: payments-api.demo.keyferry.internal
      dns: [payments-api.demo.keyferry.internal]
      uris: [spiffe://demo.keyferry.internal/ns/payments/sa/api]
      ttl: 72h
      ext_key_usage: [server-auth, client-auth]
      targets:
        - {store: aws, name: certs/payments-api}
        - {acm: {region: %[4]s, local: true, endpoint: %[5]q}}
        - {keyvault: {vault: %[6]q, local: true, ca_file: %[7]s, name: payments-api}}
        - {store: gcp, name: certs-payments-api}
        - {certificate_manager: {project: %[8]s, local: true, endpoint: "http://%[9]s", name: payments-api}}
        - {store: vault, name: certs/payments-api}
  inventory: {roots: [%[2]s]}
`, files.inter, files.root, keyARN, moto.Region, c.Moto.URL, c.KeyVault.URL(), kvCA, cloud.Project, cm.Addr())
	path := filepath.Join(c.Dir, "keyferry-certificates.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		return err
	}
	cfg, err := config.Load(path)
	if err != nil {
		return fmt.Errorf("the certificate configuration does not load: %w", err)
	}
	sts, err := stores.OpenAll(ctx, cfg)
	if err != nil {
		return err
	}
	now := time.Now()
	clock := func() time.Time { return now }
	m, err := certmgr.New(cfg, sts, certmgr.Options{Now: func() time.Time { return clock() }, Backoff: 200 * time.Millisecond})
	if err != nil {
		return err
	}
	defer m.Close()

	fmt.Fprintf(out, "CA: an offline root, and an intermediate whose key is the AWS KMS key %s (it never leaves KMS)\n", keyARN)
	res, err := m.IssueAll(ctx)
	if err != nil {
		return err
	}
	if err := printIssue(out, "issued", res); err != nil {
		return err
	}
	// 50 hours into a 72-hour life: past 2/3, so the timers' renew job re-issues it everywhere.
	later := now.Add(50 * time.Hour)
	clock = func() time.Time { return later }
	if res, err = m.Renew(ctx); err != nil {
		return err
	}
	fmt.Fprintln(out, "\n50 h later (past 2/3 of the 72 h life), the renew job re-issues it: same ACM ARN, new versions elsewhere")
	if err := printIssue(out, "renewed", res); err != nil {
		return err
	}
	clock = func() time.Time { return now }
	entries, errs := m.Inventory(ctx)
	for _, e := range errs {
		fmt.Fprintf(out, "inventory: %v\n", e)
	}
	fmt.Fprintln(out, "\n`keyferry inventory` over every cloud (each copy verified to the demo root; private keys never printed):")
	if err := inventory.WriteTable(out, entries); err != nil {
		return err
	}
	if len(errs) > 0 {
		return fmt.Errorf("the inventory could not read %d places", len(errs))
	}
	return nil
}

func printIssue(out io.Writer, verb string, res []certmgr.Result) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SPEC\tSERIAL\tTARGET\tACTION\tOBJECT\tVERSION")
	failed := 0
	for _, r := range res {
		serial := r.Serial
		if len(serial) > 12 {
			serial = serial[:12] + "…"
		}
		for _, t := range r.Targets {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Spec, dash(serial), t.Target, t.Action, dash(t.ID), dash(t.Version))
			if t.Action == certmgr.ActFailed || t.Action == certmgr.ActRefused {
				failed++
				fmt.Fprintf(tw, "\t\t\t\t%s\t\n", t.Error)
			}
		}
		if r.Error != "" {
			fmt.Fprintf(tw, "%s\t-\tfailed\t%s\t\t\n", r.Spec, r.Error)
			failed++
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d certificate targets were not %s", failed, verb)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

type caFiles struct{ root, inter string }

// makeCA does what `keyferry ca init`, `keyferry ca csr` and `keyferry ca sign-intermediate` do: an offline
// root (whose key is then discarded) and an intermediate constrained to the demo's domain, whose key is a
// new ECC_NIST_P256 signing key in AWS KMS.
func makeCA(ctx context.Context, dir, motoURL string) (caFiles, string, error) {
	rootPEM, rootKeyPEM, err := pki.InitRoot(ctx, pki.RootOptions{CommonName: "keyferry demo root", KeyType: pki.KeyECP256})
	if err != nil {
		return caFiles{}, "", err
	}
	root, err := pki.ParseCertificatePEM(rootPEM)
	if err != nil {
		return caFiles{}, "", err
	}
	rootKey, err := pki.ParsePrivateKeyPEM(rootKeyPEM)
	if err != nil {
		return caFiles{}, "", err
	}
	kc := kms.NewFromConfig(moto.Config(motoURL), func(o *kms.Options) { o.BaseEndpoint = aws.String(motoURL) })
	key, err := kc.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: kmstypes.KeySpecEccNistP256, KeyUsage: kmstypes.KeyUsageTypeSignVerify,
		Description: aws.String("keyferry demo intermediate CA")})
	if err != nil {
		return caFiles{}, "", fmt.Errorf("creating the KMS key: %w", err)
	}
	interKey, err := kmssigner.NewAWS(ctx, kc, *key.KeyMetadata.Arn)
	if err != nil {
		return caFiles{}, "", err
	}
	csr, err := pki.NewCSR(interKey, "keyferry demo intermediate")
	if err != nil {
		return caFiles{}, "", err
	}
	interPEM, err := pki.SignIntermediate(ctx, root, rootKey, csr, pki.IntermediateOptions{
		PermittedDNSDomains: []string{"demo.keyferry.internal"}})
	if err != nil {
		return caFiles{}, "", err
	}
	f := caFiles{root: filepath.Join(dir, "root.pem"), inter: filepath.Join(dir, "intermediate.pem")}
	for name, data := range map[string][]byte{f.root: rootPEM, f.inter: interPEM} {
		if err := os.WriteFile(name, data, 0o600); err != nil {
			return caFiles{}, "", err
		}
	}
	return f, *key.KeyMetadata.Arn, nil
}
