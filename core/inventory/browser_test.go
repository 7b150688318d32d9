package inventory

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// EnvChromium names the Chromium binary for the browser test ("" : chromium from PATH). When
// EnvRequireChromium is set (make test sets it, after installing Debian's chromium), a missing browser
// fails the test instead of skipping it.
const (
	EnvChromium        = "KEYFERRY_CHROMIUM"
	EnvRequireChromium = "KEYFERRY_REQUIRE_CHROMIUM"
)

// seededMix is one certificate of each kind an operator must tell apart: expired; expiring in 5, 25, 55 and
// 85 days; a foreign (not keyferry's) and a keyferry-managed one with a year left; and what each must be
// classified as.
func seededMix(t *testing.T, now time.Time) ([]Entry, map[string]string) {
	t.Helper()
	ca := newLongCA(t, "seeded CA", nil)
	day := 24 * time.Hour
	want := map[string]string{}
	var entries []Entry
	add := func(name string, d time.Duration, managed bool, status string) {
		e := FromCertificate(ca.leaf(t, leafOpts{cn: name + ".example.test", notAfter: now.Add(d)}), nil)
		e.Cloud, e.Location, e.Name, e.Managed = "aws", "us-east-1", name, managed
		entries = append(entries, Assess(e, Options{Now: now}))
		want[name] = status
	}
	add("expired", -3*day, true, KindExpired)
	add("in-5-days", 5*day+time.Hour, true, KindExpiring7)
	add("in-25-days", 25*day+time.Hour, true, KindExpiring30)
	add("in-55-days", 55*day+time.Hour, true, KindExpiring60)
	add("in-85-days", 85*day+time.Hour, true, KindExpiring90)
	add("foreign", 365*day, false, StatusOK)
	add("managed", 365*day, true, StatusOK)
	SortEntries(entries)
	return entries, want
}

// TestSeededMixClassification checks the classification of the seeded mix in the table and the JSON.
func TestSeededMixClassification(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	entries, want := seededMix(t, now)
	var js bytes.Buffer
	if err := WriteJSON(&js, entries); err != nil {
		t.Fatal(err)
	}
	got := jsonStatuses(t, js.Bytes())
	for name, st := range want {
		if got[name].status != st {
			t.Errorf("JSON: %s is %q, want %q", name, got[name].status, st)
		}
	}
	if !got["managed"].managed || got["foreign"].managed {
		t.Errorf("JSON: managed flags %+v", got)
	}
	var tb bytes.Buffer
	if err := WriteTable(&tb, entries); err != nil {
		t.Fatal(err)
	}
	rows := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(tb.String()), "\n")[1:] {
		f := strings.Fields(line)
		rows[f[2]] = f
	}
	for name, st := range want {
		f, ok := rows[name]
		if !ok {
			t.Fatalf("table: no row for %s:\n%s", name, tb.String())
		}
		findings, managed := f[len(f)-1], f[len(f)-2]
		if wantF := map[bool]string{true: "-", false: st}[st == StatusOK]; findings != wantF {
			t.Errorf("table: %s findings %q, want %q", name, findings, wantF)
		}
		if wantM := map[bool]string{true: "no", false: "yes"}[name == "foreign"]; managed != wantM {
			t.Errorf("table: %s managed %q, want %q", name, managed, wantM)
		}
	}
}

type jsonEntry struct {
	status  string
	managed bool
}

// jsonStatuses reads `keyferry inventory --format json` back: each entry's expiry status (from its
// findings) and managed flag, by name.
func jsonStatuses(t *testing.T, data []byte) map[string]jsonEntry {
	t.Helper()
	var out []struct {
		Name     string `json:"name"`
		Managed  bool   `json:"managed"`
		Findings []struct {
			Kind string `json:"kind"`
		} `json:"findings"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	m := map[string]jsonEntry{}
	for _, e := range out {
		st := StatusOK
		for _, f := range e.Findings {
			for _, s := range Statuses {
				if f.Kind == s {
					st = s
				}
			}
		}
		m[e.Name] = jsonEntry{status: st, managed: e.Managed}
	}
	return m
}

// TestHTMLReportInChromium opens the HTML report of the seeded mix in headless Chromium: the page the
// browser built holds a summary whose counts equal the JSON's, one table row and one timeline bar per
// certificate; and a screenshot shows the bars in their colours.
func TestHTMLReportInChromium(t *testing.T) {
	bin := os.Getenv(EnvChromium)
	if bin == "" {
		bin, _ = exec.LookPath("chromium")
	}
	if bin == "" {
		if os.Getenv(EnvRequireChromium) != "" {
			t.Fatalf("no chromium on PATH and %s is set: install Debian's chromium (make chromium)", EnvRequireChromium)
		}
		t.Skip("no chromium on PATH (make test installs Debian's chromium and requires it)")
	}
	now := time.Now().Truncate(time.Second)
	entries, _ := seededMix(t, now)
	dir := t.TempDir()
	var html, js bytes.Buffer
	if err := WriteHTML(&html, entries, now); err != nil {
		t.Fatal(err)
	}
	if err := WriteJSON(&js, entries); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(dir, "inventory.html")
	if err := os.WriteFile(report, html.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run := func(args ...string) []byte {
		t.Helper()
		base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
			"--user-data-dir=" + filepath.Join(dir, "profile"), "--window-size=1400,1000"}
		cmd := exec.CommandContext(ctx, bin, append(append(base, args...), "file://"+report)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", bin, args, err, stderr.String())
		}
		return out
	}
	dom := string(run("--dump-dom"))

	want := map[string]int{}
	for _, e := range jsonStatuses(t, js.Bytes()) {
		want[e.status]++
	}
	pills := regexp.MustCompile(`class="pill"[^>]*>([a-z0-9-]+): (\d+)</span>`).FindAllStringSubmatch(dom, -1)
	if len(pills) != len(Statuses) {
		t.Fatalf("the rendered page has %d summary pills, want %d:\n%s", len(pills), len(Statuses), dom)
	}
	for _, p := range pills {
		n, _ := strconv.Atoi(p[2])
		if n != want[p[1]] {
			t.Errorf("the page counts %s: %d, the JSON %d", p[1], n, want[p[1]])
		}
	}
	if n := strings.Count(dom, "<rect "); n != len(entries) {
		t.Errorf("%d timeline bars in the rendered page, want %d", n, len(entries))
	}
	if n := strings.Count(dom, `<span class="badge"`); n != len(entries) {
		t.Errorf("%d table rows in the rendered page, want %d", n, len(entries))
	}

	shot := filepath.Join(dir, "shot.png")
	run("--screenshot=" + shot)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("the screenshot is not a PNG: %v", err)
	}
	// Every status colour of the mix appears on screen (pills, bars, badges): the page rendered.
	seen := map[string]int{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			seen[hexColour(r>>8, g>>8, bl>>8)]++
		}
	}
	for st, c := range statusColours {
		if seen[c] < 50 {
			t.Errorf("the screenshot shows %d pixels of %s's colour %s", seen[c], st, c)
		}
	}
}

func hexColour(r, g, b uint32) string {
	const digits = "0123456789abcdef"
	return string([]byte{'#', digits[r>>4], digits[r&15], digits[g>>4], digits[g&15], digits[b>>4], digits[b&15]})
}
