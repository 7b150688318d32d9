package inventory

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sampleEntries are assessed entries of every status, with awkward text in them.
func sampleEntries(t *testing.T, now time.Time) []Entry {
	t.Helper()
	ca := newLongCA(t, "sample CA", nil)
	day := 24 * time.Hour
	mk := func(cloud, location, store, name, cn string, d time.Duration, o leafOpts) Entry {
		o.cn, o.notAfter = cn, now.Add(d)
		e := FromCertificate(ca.leaf(t, o), nil)
		e.Cloud, e.Location, e.Store, e.Name = cloud, location, store, name
		return Assess(e, Options{Now: now})
	}
	uri, _ := url.Parse("https://evil.example.test/x")
	withURI := FromCertificate(ca.leaf(t, leafOpts{cn: "uri.example.test", notAfter: now.Add(400 * day)}), nil)
	withURI.SANs = append(withURI.SANs, uri.String())
	withURI.Cloud, withURI.Location, withURI.Name = "azure", "kv1.vault.azure.net", "uri-cert"
	withURI = Assess(withURI, Options{Now: now})

	entries := []Entry{
		mk("aws", "us-east-1", "", "arn:aws:acm:us-east-1:123456789012:certificate/0001", "old.example.test", -2*day, leafOpts{}),
		mk("aws", "us-east-1", "", "arn:aws:acm:us-east-1:123456789012:certificate/0002", "five.example.test", 5*day, leafOpts{}),
		mk("gcp", "projects/p/locations/global", "", "web", "<script>alert(1)</script>", 20*day, leafOpts{}),
		mk("gcp", "projects/p/locations/global", "", "api", "api.example.test", 45*day, leafOpts{}),
		mk("local", "", "files", "we\"ird\\name\nline2", "weird.example.test", 80*day, leafOpts{key: rsaKey(t, 1024)}),
		mk("local", "", "files", "=cmd|' /C calc'!A0", "formula.example.test", 100*day, leafOpts{}),
		// Same cloud, location and name as the one before, in another store and then in the same.
		mk("local", "", "other-files", "=cmd|' /C calc'!A0", "formula.example.test", 101*day, leafOpts{}),
		mk("local", "", "files", "=cmd|' /C calc'!A0", "dup.example.test", 102*day, leafOpts{}),
		withURI,
	}
	entries[1].Managed = true
	entries[1].InUse = []string{"arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/1"}
	SortEntries(entries)
	return entries
}

var (
	omName   = `[a-zA-Z_:][a-zA-Z0-9_:]*`
	omLabel  = `([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"`
	omValue  = `[+-]?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?|Inf|NaN)`
	omSample = regexp.MustCompile(`^(` + omName + `)(?:\{(` + omLabel + `(?:,` + omLabel + `)*)?\})? (` + omValue + `)(?: ` + omValue + `)?$`)
	omMeta   = regexp.MustCompile(`^# (TYPE|HELP|UNIT) (` + omName + `)(?: (.*))?$`)
	omLabels = regexp.MustCompile(omLabel)
	omTypes  = []string{"counter", "gauge", "histogram", "gaugehistogram", "stateset", "info", "summary", "unknown"}
)

type omSampleLine struct {
	name   string
	labels map[string]string
	value  float64
}

// parseOpenMetrics is a small OpenMetrics text checker: every line is metadata or a sample, every sample
// belongs to a family declared with TYPE before it, families are not interleaved, label sets are unique
// within a family, a UNIT is the name's suffix, and the text ends with "# EOF" and a newline.
func parseOpenMetrics(text string) ([]omSampleLine, error) {
	if !strings.HasSuffix(text, "# EOF\n") {
		return nil, fmt.Errorf("does not end with # EOF and a newline:\n%s", text)
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	types := map[string]string{}
	done := map[string]bool{}
	seen := map[string]bool{}
	current := ""
	var samples []omSampleLine
	for i, line := range lines {
		if i == len(lines)-1 {
			if line != "# EOF" {
				return nil, fmt.Errorf("last line %q", line)
			}
			break
		}
		if line == "# EOF" {
			return nil, fmt.Errorf("line %d: # EOF before the end", i+1)
		}
		if m := omMeta.FindStringSubmatch(line); m != nil {
			kind, name, rest := m[1], m[2], m[3]
			if name != current {
				if done[name] {
					return nil, fmt.Errorf("line %d: family %s interleaved", i+1, name)
				}
				if current != "" {
					done[current] = true
				}
				current = name
			}
			switch kind {
			case "TYPE":
				if !slices.Contains(omTypes, rest) {
					return nil, fmt.Errorf("line %d: unknown type %q", i+1, rest)
				}
				if _, dup := types[name]; dup {
					return nil, fmt.Errorf("line %d: second TYPE for %s", i+1, name)
				}
				types[name] = rest
			case "UNIT":
				if rest == "" || !strings.HasSuffix(name, "_"+rest) {
					return nil, fmt.Errorf("line %d: unit %q is not the suffix of %s", i+1, rest, name)
				}
			case "HELP":
				if strings.ContainsAny(strings.NewReplacer(`\\`, "", `\n`, "", `\"`, "").Replace(rest), "\\") {
					return nil, fmt.Errorf("line %d: bad escape in HELP %q", i+1, rest)
				}
			}
			continue
		}
		if strings.HasPrefix(line, "#") || line == "" {
			return nil, fmt.Errorf("line %d: neither metadata nor a sample: %q", i+1, line)
		}
		m := omSample.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("line %d: not a valid sample: %q", i+1, line)
		}
		name := m[1]
		family := name
		if _, ok := types[family]; !ok {
			for _, suf := range []string{"_total", "_created", "_count", "_sum", "_bucket", "_gcount", "_gsum", "_info"} {
				if f, ok := strings.CutSuffix(name, suf); ok {
					if _, ok := types[f]; ok {
						family = f
					}
				}
			}
		}
		if _, ok := types[family]; !ok {
			return nil, fmt.Errorf("line %d: sample %s has no TYPE before it", i+1, name)
		}
		if family != current {
			return nil, fmt.Errorf("line %d: sample %s outside its family's block (current %s)", i+1, name, current)
		}
		labels := map[string]string{}
		var keys []string
		for _, lm := range omLabels.FindAllStringSubmatch(m[2], -1) {
			if _, dup := labels[lm[1]]; dup {
				return nil, fmt.Errorf("line %d: label %s twice", i+1, lm[1])
			}
			labels[lm[1]] = strings.NewReplacer(`\\`, `\`, `\"`, `"`, `\n`, "\n").Replace(lm[2])
			keys = append(keys, lm[1]+"="+lm[2])
		}
		slices.Sort(keys)
		id := name + "{" + strings.Join(keys, ",") + "}"
		if seen[id] {
			return nil, fmt.Errorf("line %d: duplicate series %s", i+1, id)
		}
		seen[id] = true
		v, err := strconv.ParseFloat(m[len(m)-1], 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: value: %v", i+1, err)
		}
		samples = append(samples, omSampleLine{name: name, labels: labels, value: v})
	}
	return samples, nil
}

// checkOpenMetrics fails the test unless text is valid OpenMetrics.
func checkOpenMetrics(t *testing.T, text string) []omSampleLine {
	t.Helper()
	samples, err := parseOpenMetrics(text)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	return samples
}

func TestWriteOpenMetrics(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	entries := sampleEntries(t, now)
	var b bytes.Buffer
	if err := WriteOpenMetrics(&b, entries, now); err != nil {
		t.Fatal(err)
	}
	samples := checkOpenMetrics(t, b.String())
	counts := map[string]float64{}
	var expiry []omSampleLine
	for _, s := range samples {
		switch s.name {
		case MetricCertificates:
			counts[s.labels["cloud"]+"/"+s.labels["status"]] = s.value
		case MetricExpirySeconds:
			expiry = append(expiry, s)
		default:
			t.Fatalf("unexpected metric %s", s.name)
		}
	}
	want := map[string]float64{"aws/expired": 1, "aws/expiring-7": 1, "aws/ok": 0, "gcp/expiring-30": 1, "gcp/expiring-60": 1,
		"local/expiring-90": 1, "local/ok": 3, "azure/ok": 1, "azure/expired": 0}
	for k, v := range want {
		if got, ok := counts[k]; !ok || got != v {
			t.Errorf("keyferry_certificates %s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	if len(counts) != 4*len(Statuses) {
		t.Errorf("%d count series, want every status of the 4 clouds", len(counts))
	}
	if len(expiry) != len(entries) {
		t.Fatalf("%d expiry series, want %d", len(expiry), len(entries))
	}
	found := false
	for _, s := range expiry {
		if s.labels["name"] == "we\"ird\\name\nline2" {
			found = true
			if s.value < 80*86400-1 || s.value > 80*86400 {
				t.Errorf("expiry seconds %v, want 80 days", s.value)
			}
		}
		if s.labels["cloud"] == "aws" && s.value > 0 && s.value != 5*86400 {
			t.Errorf("aws expiry %v", s.value)
		}
		if s.labels["cloud"] == "aws" && s.value < 0 && s.value != -2*86400 {
			t.Errorf("expired aws expiry %v, want -2 days", s.value)
		}
	}
	if !found {
		t.Fatal("the escaped label value did not round-trip")
	}
	// Empty inventory: still valid.
	b.Reset()
	if err := WriteOpenMetrics(&b, nil, now); err != nil {
		t.Fatal(err)
	}
	checkOpenMetrics(t, b.String())
}

func TestOpenMetricsCheckerCatchesMistakes(t *testing.T) {
	for _, bad := range []string{
		"keyferry_x 1\n# EOF\n",                                                // no TYPE
		"# TYPE a gauge\na{x=\"1\"} 1\na{x=\"1\"} 2\n# EOF\n",                  // duplicate series
		"# TYPE a gauge\na{x=\"un\"escaped\"} 1\n# EOF\n",                      // bad escaping
		"# TYPE a gauge\na 1\n",                                                // no EOF
		"# TYPE a_seconds gauge\n# UNIT a_seconds bytes\na_seconds 1\n# EOF\n", // wrong unit
	} {
		if _, err := parseOpenMetrics(bad); err == nil {
			t.Errorf("the checker accepted %q", bad)
		}
	}
}

func TestWriteEMF(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	entries := sampleEntries(t, now)
	var b bytes.Buffer
	if err := WriteEMF(&b, entries, "keyferry/certificates", now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if want := 4*len(Statuses) + len(entries); len(lines) != want {
		t.Fatalf("%d lines, want %d", len(lines), want)
	}
	metrics := map[string]int{}
	for i, line := range lines {
		var doc map[string]any
		if err := json.Unmarshal([]byte(line), &doc); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", i+1, err, line)
		}
		aws, ok := doc["_aws"].(map[string]any)
		if !ok {
			t.Fatalf("line %d: no _aws object", i+1)
		}
		if ts, ok := aws["Timestamp"].(float64); !ok || int64(ts) != now.UnixMilli() {
			t.Fatalf("line %d: Timestamp %v", i+1, aws["Timestamp"])
		}
		cwms, ok := aws["CloudWatchMetrics"].([]any)
		if !ok || len(cwms) != 1 {
			t.Fatalf("line %d: CloudWatchMetrics %v", i+1, aws["CloudWatchMetrics"])
		}
		d := cwms[0].(map[string]any)
		if d["Namespace"] != "keyferry/certificates" {
			t.Fatalf("line %d: Namespace %v", i+1, d["Namespace"])
		}
		dimSets, ok := d["Dimensions"].([]any)
		if !ok || len(dimSets) == 0 {
			t.Fatalf("line %d: Dimensions %v", i+1, d["Dimensions"])
		}
		for _, set := range dimSets {
			for _, k := range set.([]any) {
				v, ok := doc[k.(string)].(string)
				if !ok || strings.TrimSpace(v) == "" || len([]rune(v)) > 1024 {
					t.Fatalf("line %d: dimension %v = %v", i+1, k, doc[k.(string)])
				}
			}
		}
		ms, ok := d["Metrics"].([]any)
		if !ok || len(ms) == 0 {
			t.Fatalf("line %d: Metrics %v", i+1, d["Metrics"])
		}
		for _, m := range ms {
			m := m.(map[string]any)
			name, _ := m["Name"].(string)
			if _, ok := doc[name].(float64); !ok {
				t.Fatalf("line %d: metric %q has no numeric value", i+1, name)
			}
			if u, _ := m["Unit"].(string); u != "Count" && u != "Seconds" {
				t.Fatalf("line %d: unit %q", i+1, u)
			}
			metrics[name]++
		}
	}
	if metrics[MetricCertificates] != 4*len(Statuses) || metrics[MetricExpirySeconds] != len(entries) {
		t.Fatalf("metrics %v", metrics)
	}
	if err := WriteEMF(&b, entries, "", now); err == nil {
		t.Fatal("an empty namespace was accepted")
	}
}

func TestWriteHTML(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	entries := sampleEntries(t, now)
	var b bytes.Buffer
	if err := WriteHTML(&b, entries, now); err != nil {
		t.Fatal(err)
	}
	html := b.String()
	lower := strings.ToLower(html)
	for _, bad := range []string{"http://", "https://", "private key", "<script", " src=", "url(", "@import", "<link", "<img", "<iframe"} {
		if strings.Contains(lower, bad) {
			i := strings.Index(lower, bad)
			t.Errorf("the report contains %q: ...%s...", bad, html[max(0, i-80):min(len(html), i+80)])
		}
	}
	for _, want := range []string{"<svg", "&lt;script&gt;alert(1)&lt;/script&gt;", "Content-Security-Policy", "five.example.test", "<style>"} {
		if !strings.Contains(html, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if n := strings.Count(html, "<rect "); n != len(entries) {
		t.Errorf("%d bars, want %d", n, len(entries))
	}
	for st, colour := range statusColours {
		if st != KindExpiring7 && st != StatusOK && st != KindExpired {
			continue
		}
		if !strings.Contains(html, `fill="`+colour+`"`) {
			t.Errorf("no %s bar (%s)", st, colour)
		}
	}
	b.Reset()
	if err := WriteHTML(&b, nil, now); err != nil {
		t.Fatal(err)
	}
}

func TestWriteCSVTableJSON(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	entries := sampleEntries(t, now)

	var b bytes.Buffer
	if err := WriteCSV(&b, entries); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(entries)+1 || !slices.Equal(rows[0], CSVHeader) {
		t.Fatalf("%d rows, header %v", len(rows), rows[0])
	}
	col := func(name string) int { return slices.Index(CSVHeader, name) }
	for _, r := range rows[1:] {
		for _, c := range r {
			if c != "" && strings.ContainsRune("=+@", rune(c[0])) {
				t.Errorf("cell %q would run as a formula", c)
			}
		}
		if r[col("name")] == "'=cmd|' /C calc'!A0" && r[col("status")] != StatusOK {
			t.Errorf("row %v", r)
		}
	}
	if rows[1][col("status")] != KindExpired || rows[1][col("days_left")] != "-2" {
		t.Errorf("first row %v", rows[1])
	}

	b.Reset()
	if err := WriteTable(&b, entries); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != len(entries)+1 || !strings.HasPrefix(lines[0], "CLOUD") {
		t.Fatalf("table:\n%s", b.String())
	}
	for _, want := range []string{"expired", "expiring-7", "weak-key", "yes", "five.example.test"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}

	b.Reset()
	if err := WriteJSON(&b, entries); err != nil {
		t.Fatal(err)
	}
	var back []Entry
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if len(back) != len(entries) || back[1].Name != entries[1].Name || !back[1].Managed || back[1].InUse[0] != entries[1].InUse[0] ||
		!back[1].NotAfter.Equal(entries[1].NotAfter) || back[1].Findings[0].Kind != KindExpiring7 {
		t.Fatalf("JSON round trip: %+v", back[1])
	}
	if !strings.Contains(b.String(), `"days_left": -2`) || !strings.Contains(b.String(), `"findings": []`) {
		t.Errorf("JSON:\n%s", b.String())
	}
	b.Reset()
	if err := WriteJSON(&b, nil); err != nil || strings.TrimSpace(b.String()) != "[]" {
		t.Fatalf("empty JSON %q, %v", b.String(), err)
	}
}
