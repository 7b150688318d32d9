package config

import (
	"strings"
	"testing"
	"time"
)

func TestRotateSection(t *testing.T) {
	cfg, err := Parse("keyferry.yaml", []byte(twoStores+doc(`
rotate:
  - name: db-password
    store: aws
    match: ["prod/db/*"]
    every: 30d
    generate: {password: {length: 32, symbols: 2, exclude: "\"'"}}
    test: db-login
    grace: 7d
    max_age: 90d
  - name: api-token
    store: gcp
    match: api-token
    cron: "0 3 * * 1"
    generate:
      template:
        fields:
          - {name: user, static: app}
          - {name: password, generate: {random: {length: 40}}}
          - {name: dsn, compose: "postgres://{{.user}}:{{.password}}@db:5432/app"}
`)))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Rotate) != 2 {
		t.Fatalf("%d policies", len(cfg.Rotate))
	}
	a, b := cfg.Rotate[0], cfg.Rotate[1]
	if a.Name != "db-password" || a.Store != "aws" || a.Every != 30*24*time.Hour || a.Test != "db-login" || a.Grace != 7*24*time.Hour ||
		a.MaxAge != 90*24*time.Hour || a.Generate.Password == nil || a.Generate.Password.Length != 32 || *a.Generate.Password.Symbols != 2 ||
		a.Generate.Password.Lower != nil || a.Generate.Password.Exclude != `"'` || a.Line != 6 {
		t.Errorf("first policy %+v", a)
	}
	if b.Cron != "0 3 * * 1" || b.Every != 0 || b.Generate.Template == nil || len(b.Generate.Template.Fields) != 3 || b.Match[0] != "api-token" {
		t.Errorf("second policy %+v", b)
	}
	// A password without classes gets letters and digits, one of each at least.
	cfg, err = Parse("keyferry.yaml", []byte(twoStores+"rotate:\n  - {name: p, store: aws, match: x, every: 1d, generate: {password: {length: 20}}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if pw := cfg.Rotate[0].Generate.Password; pw.Lower == nil || *pw.Lower != 1 || pw.Symbols != nil {
		t.Errorf("default classes %+v", pw)
	}
}

func TestRotateErrors(t *testing.T) {
	for _, c := range []struct {
		name, input string
		wants       []want
	}{
		{"not-a-list", "rotate: {a: 1}\n", []want{w("5:1", "rotate", "must be a list of policies")}},
		{"no-schedule", "rotate:\n  - {name: p, store: aws, match: x, generate: {uuid: true}}\n",
			[]want{w("6:5", "rotate[0]", "a schedule is required")}},
		{"both-schedules", "rotate:\n  - {name: p, store: aws, match: x, every: 1d, cron: \"0 3 * * *\", generate: {uuid: true}}\n",
			[]want{w("6:48", "rotate[0].cron", "either every or cron")}},
		{"bad-cron", "rotate:\n  - {name: p, store: aws, match: x, cron: \"61 * * * *\", generate: {uuid: true}}\n",
			[]want{w("6:37", "rotate[0].cron", "is not a cron expression")}},
		{"bad-every", "rotate:\n  - {name: p, store: aws, match: x, every: monthly, generate: {uuid: true}}\n",
			[]want{w("6:37", "rotate[0].every", "not a duration")}},
		{"too-short", "rotate:\n  - {name: p, store: aws, match: x, every: 5m, generate: {uuid: true}}\n",
			[]want{w("6:37", "rotate[0].every", "shorter than 1h0m0s")}},
		{"unknown-store", "rotate:\n  - {name: p, store: s3, match: x, every: 1d, generate: {uuid: true}}\n",
			[]want{w("6:15", "rotate[0].store", `there is no store named "s3"`)}},
		{"impossible-password", "rotate:\n  - {name: p, store: aws, match: x, every: 1d, generate: {password: {length: 8, lower: 5, digits: 5}}}\n",
			[]want{w("6:48", "rotate[0].generate", "class minimums add up to 10")}},
		{"two-generators", "rotate:\n  - {name: p, store: aws, match: x, every: 1d, generate: {uuid: true, bytes: {length: 8}}}\n",
			[]want{w("6:48", "rotate[0].generate", "exactly one generator")}},
		{"unknown-key", "rotate:\n  - {name: p, store: aws, match: x, every: 1d, generate: {uuid: true}, schedule: daily}\n",
			[]want{w("6:72", "rotate[0].schedule", `unknown key "schedule"`)}},
		{"duplicate", "rotate:\n  - {name: p, store: aws, match: x, every: 1d, generate: {uuid: true}}\n  - {name: p, store: aws, match: y, every: 1d, generate: {uuid: true}}\n",
			[]want{w("7:5", "rotate[1].name", "used twice")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			input := twoStores + c.input
			_, err := Parse("keyferry.yaml", []byte(input))
			checkErrors(t, input, err, c.wants)
		})
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"30d": 720 * time.Hour, "12h": 12 * time.Hour, "90m": 90 * time.Minute} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "d", "1y", "99999999d", "-3d"} {
		if _, err := ParseDuration(bad); err == nil || strings.Contains(err.Error(), "%!") {
			t.Errorf("%q accepted (%v)", bad, err)
		}
	}
}
