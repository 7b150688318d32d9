package inventory

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
	"time"
)

// Timeline geometry (SVG user units).
const (
	tlWidth      = 960.0
	tlLabelWidth = 240.0
	tlRight      = 16.0
	tlTop        = 28.0
	tlRow        = 18.0
	tlBar        = 12.0
	tlPastDays   = 30.0      // days shown before now, where expired certificates sit
	tlMinDays    = 120.0     // the axis reaches at least this far ahead
	tlMaxDays    = 2 * 365.0 // and at most this far; longer bars are clipped
	tlMaxRows    = 500       // rows drawn; the table lists every entry
	tlAxisBottom = 20.0
)

// statusColours colour bars and badges by expiry bucket.
var statusColours = map[string]string{
	KindExpired:    "#7f1d1d",
	KindExpiring7:  "#dc2626",
	KindExpiring30: "#ea580c",
	KindExpiring60: "#d97706",
	KindExpiring90: "#ca8a04",
	StatusOK:       "#16a34a",
}

type htmlBar struct {
	Y, LabelY, X, W float64
	Colour, Label   string
	Title           string
}

type htmlTick struct {
	X     float64
	Label string
}

type htmlRow struct {
	Entry
	Status, Colour string
}

type htmlSummary struct {
	Status, Colour string
	Count          int
}

type htmlView struct {
	Generated             string
	Total                 int
	Summary               []htmlSummary
	Rows                  []htmlRow
	Bars                  []htmlBar
	Ticks                 []htmlTick
	Height, AxisY, NowX   float64
	Width, ChartLeft      float64
	Clipped               int
	MaxDaysShown, PastDay int
}

// WriteHTML writes a self-contained HTML report: inline CSS only (no script, no external asset; a
// Content-Security-Policy forbids fetching anything), a summary by status, an SVG expiry timeline with one
// bar per certificate from now to its NotAfter (expired ones from their NotAfter to now) coloured by
// bucket, and a table of every entry with its findings. Text is escaped; "://" in any text is broken with
// a zero-width space so that the report holds no link.
func WriteHTML(w io.Writer, entries []Entry, now time.Time) error {
	v := htmlView{
		Generated: now.UTC().Format(time.RFC3339), Total: len(entries),
		Width: tlWidth, ChartLeft: tlLabelWidth, PastDay: tlPastDays,
	}
	counts := map[string]int{}
	for _, e := range entries {
		at := Assess(Entry{NotAfter: e.NotAfter}, Options{Now: now})
		st := at.Status()
		counts[st]++
		e.DaysLeft = at.DaysLeft
		v.Rows = append(v.Rows, htmlRow{Entry: e, Status: st, Colour: statusColours[st]})
	}
	for _, st := range Statuses {
		v.Summary = append(v.Summary, htmlSummary{Status: st, Colour: statusColours[st], Count: counts[st]})
	}

	// The axis: from tlPastDays before now to the furthest NotAfter (at least tlMinDays, at most tlMaxDays).
	ahead := tlMinDays
	for _, e := range entries {
		if d := e.NotAfter.Sub(now).Hours() / 24; d > ahead {
			ahead = d
		}
	}
	ahead = math.Min(math.Ceil(ahead), tlMaxDays)
	v.MaxDaysShown = int(ahead)
	span := tlPastDays + ahead
	plot := tlWidth - tlLabelWidth - tlRight
	x := func(days float64) float64 {
		days = math.Max(-tlPastDays, math.Min(ahead, days))
		return round1(tlLabelWidth + (days+tlPastDays)/span*plot)
	}
	v.NowX = x(0)
	for _, d := range []float64{-tlPastDays, 0, 7, 30, 60, 90, 180, 365, 730} {
		if d > ahead {
			break
		}
		label := fmt.Sprintf("+%dd", int(d))
		switch {
		case d == 0:
			label = "now"
		case d < 0:
			label = fmt.Sprintf("%dd", int(d))
		}
		v.Ticks = append(v.Ticks, htmlTick{X: x(d), Label: label})
	}
	rows := entries
	if len(rows) > tlMaxRows {
		v.Clipped = len(rows) - tlMaxRows
		rows = rows[:tlMaxRows]
	}
	for i, e := range rows {
		days := e.NotAfter.Sub(now).Hours() / 24
		x0, x1 := x(0), x(days)
		if x1 < x0 {
			x0, x1 = x1, x0
		}
		wdt := math.Max(x1-x0, 2) // a certificate expiring right now still shows
		st := statusAt(e, now)
		y := tlTop + float64(i)*tlRow
		v.Bars = append(v.Bars, htmlBar{
			Y: round1(y), LabelY: round1(y + tlBar - 2), X: x0, W: round1(wdt), Colour: statusColours[st],
			Label: shorten(displayName(e), 34),
			Title: fmt.Sprintf("%s — %s — not after %s (%s)", displayName(e), e.Name, e.NotAfter.UTC().Format(time.RFC3339), st),
		})
	}
	v.AxisY = round1(tlTop + float64(len(rows))*tlRow + 4)
	v.Height = round1(v.AxisY + tlAxisBottom)
	return htmlTemplate.Execute(w, v)
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }

// displayName is the subject's common name, else the entry's name.
func displayName(e Entry) string {
	if e.cert != nil && e.cert.Subject.CommonName != "" {
		return e.cert.Subject.CommonName
	}
	for _, part := range strings.Split(e.Subject, ",") {
		if cn, ok := strings.CutPrefix(part, "CN="); ok && cn != "" {
			return cn
		}
	}
	if len(e.SANs) > 0 {
		return e.SANs[0]
	}
	return e.Name
}

func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// nolink breaks "://" so that no text of the report reads as a link.
func nolink(s string) string { return strings.ReplaceAll(printable(s), "://", ":\u200b//") }

var htmlTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"t":    nolink,
	"date": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") },
	"join": func(s []string) string { return nolink(strings.Join(s, ", ")) },
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>keyferry certificate inventory</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#111827;background:#fff}
h1{font-size:1.4em;margin:0 0 4px}h2{font-size:1.1em;margin:24px 0 8px}
.meta{color:#6b7280;font-size:.9em}
.summary{display:flex;gap:8px;flex-wrap:wrap;margin:12px 0}
.pill{border-radius:6px;padding:6px 10px;color:#fff;font-weight:600;font-size:.9em}
.badge{display:inline-block;border-radius:4px;padding:1px 6px;color:#fff;font-size:.8em;white-space:nowrap}
.finding{display:block;font-size:.85em}
table{border-collapse:collapse;width:100%;font-size:.85em}
th,td{border-bottom:1px solid #e5e7eb;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f9fafb;position:sticky;top:0}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.95em;word-break:break-all}
svg text{font-size:11px;fill:#374151}
.tick{stroke:#d1d5db;stroke-dasharray:3 3}.now{stroke:#111827;stroke-width:1.5}
</style>
</head>
<body>
<h1>keyferry certificate inventory</h1>
<div class="meta">{{.Total}} certificate(s), generated {{.Generated}}</div>
<div class="summary">{{range .Summary}}<span class="pill" style="background:{{.Colour}}">{{.Status}}: {{.Count}}</span>{{end}}</div>

<h2>Expiry timeline</h2>
<svg role="img" aria-label="Certificate expiry timeline" width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}">
{{range .Ticks}}<line class="tick" x1="{{.X}}" y1="16" x2="{{.X}}" y2="{{$.AxisY}}"></line><text x="{{.X}}" y="12" text-anchor="middle">{{.Label}}</text>
{{end}}<line class="now" x1="{{.NowX}}" y1="16" x2="{{.NowX}}" y2="{{.AxisY}}"></line>
{{range .Bars}}<g><title>{{t .Title}}</title><text x="{{$.ChartLeft}}" dx="-6" y="{{.LabelY}}" text-anchor="end">{{t .Label}}</text><rect x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="12" rx="2" fill="{{.Colour}}"></rect></g>
{{end}}</svg>
{{if .Clipped}}<div class="meta">{{.Clipped}} more certificate(s) not drawn; all are in the table.</div>{{end}}
<div class="meta">Axis: {{.PastDay}} days back to {{.MaxDaysShown}} days ahead; longer lifetimes are clipped.</div>

<h2>Certificates</h2>
<table>
<thead><tr><th>Status</th><th>Cloud</th><th>Location</th><th>Store</th><th>Name</th><th>Subject</th><th>SANs</th><th>Issuer</th><th>Not after</th><th>Days left</th><th>Key</th><th>Signature</th><th>Managed</th><th>In use by</th><th>Findings</th></tr></thead>
<tbody>
{{range .Rows}}<tr><td><span class="badge" style="background:{{.Colour}}">{{.Status}}</span></td><td>{{t .Cloud}}</td><td>{{t .Location}}</td><td>{{t .Store}}</td><td class="mono">{{t .Name}}</td><td>{{t .Subject}}</td><td>{{join .SANs}}</td><td>{{t .Issuer}}</td><td>{{date .NotAfter}}</td><td class="num">{{.DaysLeft}}</td><td>{{t .KeyType}}</td><td>{{t .SignatureAlgorithm}}</td><td>{{if .Managed}}yes{{else}}no{{end}}</td><td class="mono">{{join .InUse}}</td><td>{{range .Findings}}<span class="finding"><b>{{t .Kind}}</b>: {{t .Detail}}</span>{{end}}</td></tr>
{{end}}</tbody>
</table>
</body>
</html>
`))
