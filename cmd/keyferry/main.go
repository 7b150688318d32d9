// Command keyferry is the CLI over keyferry's core: validate a configuration, test that every configured
// store is reachable with the permissions keyferry needs, and (as later features land) plan, sync, rotate,
// issue and inventory.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"version", "print the version", runVersion},
		{"validate", "check a configuration file: validate -f keyferry.yaml", runValidate},
		{"stores", "work with the configured stores: stores test -f keyferry.yaml", runStores},
		{"plan", "show what replication would do, writing nothing: plan [--output json] [--only NAME]", runPlan},
		{"sync", "replicate now: sync [--only NAME] [--deep]", runSync},
		{"rotate", "rotate what is due, or one secret now: rotate [--dry-run] [NAME]", runRotate},
		{"status", "per replica: in sync, stale, conflict or refused: status [--output json]", runStatus},
		{"ca", "an offline root and intermediates: ca init|csr|sign-intermediate", runCA},
		{"certs", "issue or renew the configured certificates: certs issue|renew [--only NAME] [--dry-run]", runCerts},
		{"inventory", "every certificate in the configured places: inventory [--output table|json|csv|html|openmetrics|emf]", runInventory},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "keyferry: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: keyferry <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
}

func versionString() string {
	v := version
	if v == "" {
		v = "(devel)"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
			v = bi.Main.Version
		}
	}
	return v
}

func runVersion(_ context.Context, _ []string, stdout, _ io.Writer) int {
	fmt.Fprintf(stdout, "keyferry %s\n", versionString())
	return 0
}
