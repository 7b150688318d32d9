package main

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/keyferry/keyferry/core/audit"
	"github.com/keyferry/keyferry/core/certmgr"
	"github.com/keyferry/keyferry/core/config"
	"github.com/keyferry/keyferry/core/inventory"
	"github.com/keyferry/keyferry/core/notify"
	"github.com/keyferry/keyferry/core/pki"
	"github.com/keyferry/keyferry/core/stores"
)

// The certificate commands: `ca` (an offline root, intermediates, certificate requests), `certs` (issue
// and renew the configured certificates) and `inventory`. No command ever prints a private key: keys are
// written to files of mode 0600 only, and errors come from packages that never quote key material.

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// durationFlag accepts what keyferry.yaml accepts: 30d, 72h, 90m.
type durationFlag struct{ d time.Duration }

func (f *durationFlag) String() string { return f.d.String() }
func (f *durationFlag) Set(v string) error {
	d, err := config.ParseDuration(v)
	if err != nil {
		return err
	}
	if d <= 0 {
		return fmt.Errorf("%s is not a positive duration", v)
	}
	f.d = d
	return nil
}

func runCA(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const usage = "usage: keyferry ca init --out DIR [--cn NAME]\n" +
		"       keyferry ca csr --key FILE --cn NAME --out FILE\n" +
		"       keyferry ca sign-intermediate --root-cert FILE --root-key FILE --csr FILE [--ttl 8760h] [--permit-dns DOMAIN]... --out FILE"
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	switch args[0] {
	case "init":
		return runCAInit(ctx, args[1:], stdout, stderr)
	case "csr":
		return runCACSR(args[1:], stdout, stderr)
	case "sign-intermediate":
		return runCASign(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "keyferry ca: unknown subcommand %q\n%s\n", args[0], usage)
	return 2
}

// fingerprint is the SHA-256 of the certificate's DER, as colon-separated upper-case hex.
func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

// writeNew creates path with mode perm, failing if it exists (a key is never overwritten).
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists: keyferry never overwrites it; choose another path or move it away", path)
		}
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Chmod(perm); err != nil { // exactly perm, whatever the umask
		f.Close()
		return err
	}
	return f.Close()
}

// writeFile writes a public file (a certificate, a request, a report), replacing any older one.
func writeFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func readCertificate(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := pki.ParseCertificatePEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

func runCAInit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ca init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "directory to write root.pem and root.key to (created 0700 if missing)")
	cn := fs.String("cn", "keyferry root CA", "the root's common name")
	org := fs.String("org", "", "the root's organization")
	keyType := fs.String("key-type", pki.KeyECP384, "key type: "+strings.Join(pki.KeyTypes, ", "))
	ttl := &durationFlag{d: pki.DefaultRootTTL}
	fs.Var(ttl, "ttl", "the root's lifetime (default 10 years: 3650d)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *out == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: keyferry ca init --out DIR [--cn NAME] [--key-type ec-p384] [--ttl 3650d]")
		return 2
	}
	if err := os.MkdirAll(*out, 0o700); err != nil {
		fmt.Fprintf(stderr, "ca init: %v\n", err)
		return 1
	}
	certPath, keyPath := filepath.Join(*out, "root.pem"), filepath.Join(*out, "root.key")
	for _, p := range []string{keyPath, certPath} {
		if _, err := os.Lstat(p); err == nil {
			fmt.Fprintf(stderr, "ca init: %s already exists: keyferry never overwrites a CA; choose another --out or move it away\n", p)
			return 1
		}
	}
	certPEM, keyPEM, err := pki.InitRoot(ctx, pki.RootOptions{CommonName: *cn, Organization: *org, KeyType: *keyType, TTL: ttl.d})
	if err != nil {
		fmt.Fprintf(stderr, "ca init: %v\n", err)
		return 1
	}
	if err := writeNew(keyPath, keyPEM, 0o600); err != nil {
		fmt.Fprintf(stderr, "ca init: %v\n", err)
		return 1
	}
	if err := writeNew(certPath, certPEM, 0o644); err != nil {
		fmt.Fprintf(stderr, "ca init: %v\n", err)
		return 1
	}
	root, err := pki.ParseCertificatePEM(certPEM)
	if err != nil {
		fmt.Fprintf(stderr, "ca init: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "root certificate:    %s\n", certPath)
	fmt.Fprintf(stdout, "root key:            %s (mode 0600)\n", keyPath)
	fmt.Fprintf(stdout, "subject:             %s\n", root.Subject)
	fmt.Fprintf(stdout, "key type:            %s\n", *keyType)
	fmt.Fprintf(stdout, "not after:           %s\n", root.NotAfter.UTC().Format(time.RFC3339))
	fmt.Fprintf(stdout, "SHA-256 fingerprint: %s\n", fingerprint(root))
	fmt.Fprintf(stderr, "WARNING: keep %s offline (an encrypted disk, a hardware token, a safe). It is needed only to sign "+
		"intermediates (`keyferry ca sign-intermediate`); never put it on a server or in a store keyferry replicates to. "+
		"Anyone holding it can issue certificates every client of this root trusts.\n", keyPath)
	return 0
}

func runCACSR(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ca csr", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keyPath := fs.String("key", "", "the intermediate's key file (PKCS#8 PEM, mode 0600); generated if missing")
	cn := fs.String("cn", "", "the intermediate's common name")
	out := fs.String("out", "", "file to write the certificate request (CSR) to")
	keyType := fs.String("key-type", pki.KeyECP384, "type of a generated key: "+strings.Join(pki.KeyTypes, ", "))
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *keyPath == "" || *cn == "" || *out == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: keyferry ca csr --key FILE --cn NAME --out FILE [--key-type ec-p384]")
		return 2
	}
	if filepath.Clean(*keyPath) == filepath.Clean(*out) {
		fmt.Fprintln(stderr, "ca csr: --out must not be the key file")
		return 2
	}
	_, statErr := os.Lstat(*keyPath)
	switch {
	case errors.Is(statErr, os.ErrNotExist):
		key, err := pki.GenerateKey(*keyType)
		if err != nil {
			fmt.Fprintf(stderr, "ca csr: %v\n", err)
			return 1
		}
		keyPEM, err := pki.MarshalPrivateKeyPEM(key)
		if err != nil {
			fmt.Fprintf(stderr, "ca csr: %v\n", err)
			return 1
		}
		if err := writeNew(*keyPath, keyPEM, 0o600); err != nil {
			fmt.Fprintf(stderr, "ca csr: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "generated a new %s key: %s (mode 0600)\n", *keyType, *keyPath)
	case statErr != nil:
		fmt.Fprintf(stderr, "ca csr: %v\n", statErr)
		return 1
	}
	signer, err := pki.LoadFileSigner(*keyPath)
	if err != nil {
		fmt.Fprintf(stderr, "ca csr: %v\n", err)
		return 1
	}
	csr, err := pki.NewCSR(signer, *cn)
	if err != nil {
		fmt.Fprintf(stderr, "ca csr: %v\n", err)
		return 1
	}
	if err := writeFile(*out, csr); err != nil {
		fmt.Fprintf(stderr, "ca csr: %v\n", err)
		return 1
	}
	kt, _ := pki.KeyTypeOf(signer.Public())
	fmt.Fprintf(stdout, "certificate request for CN=%s (%s key) written to %s\n", *cn, kt, *out)
	fmt.Fprintf(stdout, "next, on the machine holding the root key: keyferry ca sign-intermediate --root-cert root.pem --root-key root.key --csr %s --out intermediate.pem\n", *out)
	return 0
}

func runCASign(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ca sign-intermediate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rootCert := fs.String("root-cert", "", "the root certificate (PEM)")
	rootKey := fs.String("root-key", "", "the root key (PKCS#8 PEM, mode 0600)")
	csrPath := fs.String("csr", "", "the intermediate's certificate request (from `keyferry ca csr`)")
	out := fs.String("out", "", "file to write the intermediate certificate to")
	ttl := &durationFlag{d: pki.DefaultIntermediateTTL}
	fs.Var(ttl, "ttl", "the intermediate's lifetime (cut to the root's)")
	var permitDNS, excludeDNS, permitURI stringList
	fs.Var(&permitDNS, "permit-dns", "name constraint: a DNS domain the intermediate may issue for (repeatable)")
	fs.Var(&excludeDNS, "exclude-dns", "name constraint: a DNS domain the intermediate may not issue for (repeatable)")
	fs.Var(&permitURI, "permit-uri", "name constraint: a URI host (e.g. a SPIFFE trust domain) the intermediate may issue for (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *rootCert == "" || *rootKey == "" || *csrPath == "" || *out == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: keyferry ca sign-intermediate --root-cert FILE --root-key FILE --csr FILE [--ttl 8760h] [--permit-dns DOMAIN]... --out FILE")
		return 2
	}
	root, err := readCertificate(*rootCert)
	if err != nil {
		fmt.Fprintf(stderr, "ca sign-intermediate: root certificate: %v\n", err)
		return 1
	}
	key, err := pki.LoadFileSigner(*rootKey)
	if err != nil {
		fmt.Fprintf(stderr, "ca sign-intermediate: %v\n", err)
		return 1
	}
	csr, err := os.ReadFile(*csrPath)
	if err != nil {
		fmt.Fprintf(stderr, "ca sign-intermediate: %v\n", err)
		return 1
	}
	certPEM, err := pki.SignIntermediate(ctx, root, key, csr, pki.IntermediateOptions{TTL: ttl.d,
		PermittedDNSDomains: permitDNS, ExcludedDNSDomains: excludeDNS, PermittedURIDomains: permitURI})
	if err != nil {
		fmt.Fprintf(stderr, "ca sign-intermediate: %v\n", err)
		return 1
	}
	if err := writeFile(*out, certPEM); err != nil {
		fmt.Fprintf(stderr, "ca sign-intermediate: %v\n", err)
		return 1
	}
	c, err := pki.ParseCertificatePEM(certPEM)
	if err != nil {
		fmt.Fprintf(stderr, "ca sign-intermediate: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "intermediate certificate: %s\n", *out)
	fmt.Fprintf(stdout, "subject:                  %s\n", c.Subject)
	fmt.Fprintf(stdout, "issuer:                   %s\n", c.Issuer)
	fmt.Fprintf(stdout, "not after:                %s\n", c.NotAfter.UTC().Format(time.RFC3339))
	constraints := "none"
	if len(permitDNS)+len(excludeDNS)+len(permitURI) > 0 {
		var parts []string
		if len(permitDNS) > 0 {
			parts = append(parts, "DNS "+strings.Join(permitDNS, ", "))
		}
		if len(excludeDNS) > 0 {
			parts = append(parts, "not DNS "+strings.Join(excludeDNS, ", "))
		}
		if len(permitURI) > 0 {
			parts = append(parts, "URI hosts "+strings.Join(permitURI, ", "))
		}
		constraints = strings.Join(parts, "; ")
	}
	fmt.Fprintf(stdout, "name constraints:         %s\n", constraints)
	fmt.Fprintf(stdout, "SHA-256 fingerprint:      %s\n", fingerprint(c))
	if constraints == "none" {
		fmt.Fprintln(stderr, "note: the intermediate has no name constraints and can sign any name; --permit-dns limits what a stolen intermediate key could do")
	}
	return 0
}

// loadCertConfig loads the configuration; needSection refuses one without `certificates:`.
func loadCertConfig(file string, needSection bool, stderr io.Writer) (*config.Config, bool) {
	cfg, err := config.Load(file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, false
	}
	if cfg.Certificates == nil {
		if needSection {
			fmt.Fprintf(stderr, "%s: there is no `certificates:` section: nothing to issue (see docs/configuration.md)\n", file)
			return nil, false
		}
		cfg.Certificates = &config.Certificates{} // the inventory still scans the stores
	}
	return cfg, true
}

// newManager opens the stores and builds the certificate manager (no call is made yet).
func newManager(ctx context.Context, cfg *config.Config, opts certmgr.Options, stderr io.Writer) (*certmgr.Manager, bool) {
	sts, err := stores.OpenAll(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, false
	}
	m, err := certmgr.New(cfg, sts, opts)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cfg.File, err)
		return nil, false
	}
	return m, true
}

func runCerts(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const usage = "usage: keyferry certs issue|renew [-f keyferry.yaml] [--only NAME]... [--dry-run] [--output table|json]"
	if len(args) == 0 || (args[0] != "issue" && args[0] != "renew") {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	verb := args[0]
	fs := flag.NewFlagSet("certs "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "keyferry.yaml", "configuration file")
	var only stringList
	fs.Var(&only, "only", "only this certificate (repeatable); default: every certificate")
	dryRun := fs.Bool("dry-run", false, "issue and write nothing: show what would be done")
	output := fs.String("output", "table", "table or json")
	verbose := fs.Bool("v", false, "log each step and audit record to stderr")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if *output != "table" && *output != "json" {
		fmt.Fprintln(stderr, "--output must be table or json")
		return 2
	}
	logs := io.Discard
	if *verbose {
		logs = stderr
	}
	opts := certmgr.Options{Logger: slog.New(slog.NewTextHandler(logs, nil)), Audit: audit.NewJSONSink(logs), DryRun: *dryRun}
	cfg, ok := loadCertConfig(*file, true, stderr)
	if !ok {
		return 1
	}
	if !*dryRun {
		// Failures raise alerts on the configured routes, as the scheduled renewal does.
		n, err := notify.New(cfg.Notify, slog.New(slog.NewTextHandler(stderr, nil)))
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", *file, err)
			return 1
		}
		defer n.Close()
		opts.Notifier = n
	}
	m, ok := newManager(ctx, cfg, opts, stderr)
	if !ok {
		return 1
	}
	defer m.Close()
	var results []certmgr.Result
	var err error
	if verb == "issue" {
		results, err = m.IssueSome(ctx, only...)
	} else {
		results, err = m.Renew(ctx, only...)
	}
	if results == nil && err != nil {
		fmt.Fprintf(stderr, "certs %s: %v\n", verb, err)
		return 1
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(results)
	} else {
		printResults(stdout, verb, results, *dryRun)
	}
	if err != nil {
		for _, r := range results {
			if r.Err != nil {
				fmt.Fprintf(stderr, "%s: %s\n", r.Spec, r.Error)
			}
			for _, t := range r.Targets {
				if t.Err != nil {
					fmt.Fprintf(stderr, "%s → %s: %s\n", r.Spec, t.Target, t.Error)
				}
			}
		}
		return 1
	}
	return 0
}

func printResults(w io.Writer, verb string, results []certmgr.Result, dryRun bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CERTIFICATE\tTARGET\tACTION\tDETAIL")
	counts := map[certmgr.Action]int{}
	issued := 0
	for _, r := range results {
		if r.Issued {
			issued++
		}
		for _, t := range r.Targets {
			counts[t.Action]++
			detail := t.Reason
			if t.Error != "" {
				detail = oneLine(t.Error)
			} else if t.Action == certmgr.ActWritten {
				detail = fmt.Sprintf("serial %s, not after %s (%s)", r.Serial, r.NotAfter.UTC().Format(time.RFC3339), t.Reason)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Spec, t.Target, t.Action, detail)
		}
	}
	tw.Flush()
	var parts []string
	for _, a := range []certmgr.Action{certmgr.ActWritten, certmgr.ActWouldWrite, certmgr.ActNotDue, certmgr.ActNotManaged, certmgr.ActRefused, certmgr.ActFailed} {
		if counts[a] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[a], a))
		}
	}
	if len(parts) == 0 {
		parts = []string{"no targets"}
	}
	what := fmt.Sprintf("%d issued", issued)
	if dryRun {
		what = "dry run, nothing issued"
	}
	fmt.Fprintf(w, "\n%s: %d certificates, %s; targets: %s\n", verb, len(results), what, strings.Join(parts, ", "))
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// inventoryFormats are the --output values of `keyferry inventory`.
var inventoryFormats = []string{"table", "json", "csv", "html", "openmetrics", "emf"}

func runInventory(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("inventory", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "keyferry.yaml", "configuration file")
	output := fs.String("output", "table", strings.Join(inventoryFormats, ", "))
	out := fs.String("out", "", "write the inventory to this file instead of stdout")
	namespace := fs.String("namespace", "keyferry", "CloudWatch namespace (--output emf)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	known := false
	for _, f := range inventoryFormats {
		known = known || f == *output
	}
	if !known || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "--output must be one of %s\n", strings.Join(inventoryFormats, ", "))
		return 2
	}
	now := time.Now()
	cfg, ok := loadCertConfig(*file, false, stderr)
	if !ok {
		return 1
	}
	m, ok := newManager(ctx, cfg, certmgr.Options{Now: func() time.Time { return now }}, stderr)
	if !ok {
		return 1
	}
	defer m.Close()
	entries, errs := m.Inventory(ctx)
	var buf strings.Builder
	var err error
	switch *output {
	case "table":
		err = inventory.WriteTable(&buf, entries)
	case "json":
		err = inventory.WriteJSON(&buf, entries)
	case "csv":
		err = inventory.WriteCSV(&buf, entries)
	case "html":
		err = inventory.WriteHTML(&buf, entries, now)
	case "openmetrics":
		err = inventory.WriteOpenMetrics(&buf, entries, now)
	case "emf":
		err = inventory.WriteEMF(&buf, entries, *namespace, now)
	}
	if err != nil {
		fmt.Fprintf(stderr, "inventory: %v\n", err)
		return 1
	}
	if *out != "" {
		if err := writeFile(*out, []byte(buf.String())); err != nil {
			fmt.Fprintf(stderr, "inventory: %v\n", err)
			return 1
		}
		fmt.Fprintf(stderr, "inventory: %d certificates written to %s\n", len(entries), *out)
	} else {
		io.WriteString(stdout, buf.String())
	}
	for _, e := range errs {
		fmt.Fprintf(stderr, "inventory: %s\n", oneLine(e.Error()))
	}
	if len(errs) > 0 {
		fmt.Fprintf(stderr, "inventory: %d places could not be read; the others are listed\n", len(errs))
		return 1
	}
	return 0
}
