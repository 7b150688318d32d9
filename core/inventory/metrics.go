package inventory

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Metric names.
const (
	MetricCertificates  = "keyferry_certificates"
	MetricExpirySeconds = "keyferry_certificate_expiry_seconds"
)

// expirySeconds is NotAfter - now in whole seconds (negative once expired).
func expirySeconds(e Entry, now time.Time) float64 {
	return math.Floor(e.NotAfter.Sub(now).Seconds())
}

// statusAt is the entry's expiry status at now (whatever now its findings were computed at).
func statusAt(e Entry, now time.Time) string {
	return Assess(Entry{NotAfter: e.NotAfter}, Options{Now: now}).Status()
}

// countByCloud counts the entries per cloud and status; every status of every cloud seen is present, so
// a series drops to 0 instead of vanishing.
func countByCloud(entries []Entry, now time.Time) (clouds []string, counts map[[2]string]int) {
	counts = map[[2]string]int{}
	for _, e := range entries {
		if !slices.Contains(clouds, e.Cloud) {
			clouds = append(clouds, e.Cloud)
		}
		counts[[2]string{e.Cloud, statusAt(e, now)}]++
	}
	slices.Sort(clouds)
	return clouds, counts
}

// WriteEMF writes CloudWatch Embedded Metric Format, one JSON object per line: for each cloud and status
// a keyferry_certificates count (dimensions cloud, status), then for each certificate its
// keyferry_certificate_expiry_seconds (dimensions name, subject; cloud, location, store, serial,
// not_after, status and findings ride along as properties). Printed to stdout by a Lambda function (or
// sent to the CloudWatch agent), CloudWatch extracts the metrics under namespace.
func WriteEMF(w io.Writer, entries []Entry, namespace string, now time.Time) error {
	if strings.TrimSpace(namespace) == "" || len(namespace) > 255 || strings.HasPrefix(namespace, ":") {
		return fmt.Errorf("inventory: EMF namespace %q: want 1 to 255 characters, not starting with ':'", namespace)
	}
	ts := now.UnixMilli()
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	directive := func(dims []string, metric, unit string) map[string]any {
		return map[string]any{
			"Timestamp": ts,
			"CloudWatchMetrics": []any{map[string]any{
				"Namespace":  namespace,
				"Dimensions": [][]string{dims},
				"Metrics":    []any{map[string]string{"Name": metric, "Unit": unit}},
			}},
		}
	}
	clouds, counts := countByCloud(entries, now)
	for _, cloud := range clouds {
		for _, status := range Statuses {
			line := map[string]any{
				"_aws":             directive([]string{"cloud", "status"}, MetricCertificates, "Count"),
				"cloud":            dimValue(cloud),
				"status":           status,
				MetricCertificates: counts[[2]string{cloud, status}],
			}
			if err := enc.Encode(line); err != nil {
				return err
			}
		}
	}
	for _, e := range entries {
		findings := make([]string, 0, len(e.Findings))
		for _, f := range e.Findings {
			findings = append(findings, f.Kind)
		}
		line := map[string]any{
			"_aws":              directive([]string{"name", "subject"}, MetricExpirySeconds, "Seconds"),
			"name":              dimValue(e.Name),
			"subject":           dimValue(e.Subject),
			"cloud":             e.Cloud,
			"location":          e.Location,
			"store":             e.Store,
			"serial":            e.Serial,
			"not_after":         e.NotAfter.UTC().Format(time.RFC3339),
			"status":            statusAt(e, now),
			"managed":           e.Managed,
			"findings":          findings,
			MetricExpirySeconds: expirySeconds(e, now),
		}
		if err := enc.Encode(line); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// dimValue makes a CloudWatch dimension value: valid UTF-8, at least one non-space character, at most
// 1024 characters.
func dimValue(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	if utf8.RuneCountInString(s) > 1024 {
		r := []rune(s)
		s = string(r[:1023]) + "…"
	}
	return s
}

// WriteOpenMetrics writes the OpenMetrics text format: the gauge keyferry_certificates{cloud,status}
// (every status of every cloud seen, 0 included) and the gauge
// keyferry_certificate_expiry_seconds{cloud,location,name} (plus store for certificates found in a
// store), seconds until NotAfter at now (negative once expired), then "# EOF". A certificate whose label
// set repeats another's gets its serial appended to its name, as label sets must be unique.
func WriteOpenMetrics(w io.Writer, entries []Entry, now time.Time) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# TYPE %s gauge\n", MetricCertificates)
	fmt.Fprintf(bw, "# HELP %s %s\n", MetricCertificates, escapeHelp("Certificates in keyferry's inventory, by cloud and expiry status."))
	clouds, counts := countByCloud(entries, now)
	for _, cloud := range clouds {
		for _, status := range Statuses {
			fmt.Fprintf(bw, "%s{cloud=\"%s\",status=\"%s\"} %d\n", MetricCertificates, escapeLabel(cloud), escapeLabel(status),
				counts[[2]string{cloud, status}])
		}
	}
	fmt.Fprintf(bw, "# TYPE %s gauge\n", MetricExpirySeconds)
	fmt.Fprintf(bw, "# UNIT %s seconds\n", MetricExpirySeconds)
	fmt.Fprintf(bw, "# HELP %s %s\n", MetricExpirySeconds, escapeHelp("Seconds until the certificate's notAfter (negative once expired)."))
	seen := map[string]bool{}
	for _, e := range entries {
		name := e.Name
		labels := func() string {
			s := fmt.Sprintf("cloud=\"%s\",location=\"%s\",name=\"%s\"", escapeLabel(e.Cloud), escapeLabel(e.Location), escapeLabel(name))
			if e.Store != "" {
				s += fmt.Sprintf(",store=\"%s\"", escapeLabel(e.Store))
			}
			return s
		}
		ls := labels()
		for i := 2; seen[ls]; i++ {
			name = e.Name + "#" + e.Serial
			if i > 2 {
				name += "#" + strconv.Itoa(i-1)
			}
			ls = labels()
		}
		seen[ls] = true
		fmt.Fprintf(bw, "%s{%s} %s\n", MetricExpirySeconds, ls, strconv.FormatFloat(expirySeconds(e, now), 'f', -1, 64))
	}
	fmt.Fprint(bw, "# EOF\n")
	return bw.Flush()
}

// escapeLabel escapes a label value as OpenMetrics requires (backslash, double quote, newline), after
// making it valid UTF-8.
func escapeLabel(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// escapeHelp escapes HELP text the same way.
func escapeHelp(s string) string { return escapeLabel(s) }
