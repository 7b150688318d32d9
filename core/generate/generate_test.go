package generate

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func ptr[T any](v T) *T { return &v }

// problems returns the individual messages of a Validate error.
func problems(err error) []string {
	if err == nil {
		return nil
	}
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		var out []string
		for _, e := range joined.Unwrap() {
			out = append(out, e.Error())
		}
		return out
	}
	return []string{err.Error()}
}

func TestValidateErrors(t *testing.T) {
	pw := func(p Password) Spec { return Spec{Password: &p} }
	tmpl := func(fields ...Field) Spec { return Spec{Template: &Template{Fields: fields}} }
	static := func(name, v string) Field { return Field{Name: name, Static: ptr(v)} }
	compose := func(name, c string) Field { return Field{Name: name, Compose: c} }

	tests := []struct {
		name string
		spec Spec
		want []string // each message must start with one of these, in order
	}{
		{"no kind", Spec{}, []string{"spec: no kind set"}},
		{"two kinds", Spec{UUID: true, Password: &Password{Length: 8, Lower: ptr(0)}},
			[]string{"spec: 2 kinds set (password, uuid): set exactly one"}},
		{"password too short", pw(Password{Length: 4, Lower: ptr(0)}),
			[]string{"password.length: 4 is below the minimum 8"}},
		{"password too long", pw(Password{Length: 2000, Lower: ptr(0)}),
			[]string{"password.length: 2000 is above the maximum 1024"}},
		{"minimums exceed length", pw(Password{Length: 16, Lower: ptr(5), Upper: ptr(5), Digits: ptr(5), Symbols: ptr(5)}),
			[]string{"password: class minimums add up to 20, more than length 16"}},
		{"minimums overflow", pw(Password{Length: 16, Lower: ptr(math.MaxInt), Upper: ptr(math.MaxInt)}),
			[]string{"password: class minimums add up to more than length 16"}},
		{"class fully excluded with minimum", pw(Password{Length: 12, Lower: ptr(1), Digits: ptr(2), Exclude: "0123456789"}),
			[]string{`password.digits: minimum 2 but every digit character is excluded (exclude "0123456789")`}},
		{"symbols fully excluded with minimum", pw(Password{Length: 12, Lower: ptr(0), Symbols: ptr(1), Exclude: symbolChars}),
			[]string{"password.symbols: minimum 1 but every symbol character is excluded"}},
		{"empty pool after exclusions", pw(Password{Length: 12, Digits: ptr(0), Exclude: "0123456789"}),
			[]string{`password: no characters remain after exclusions (exclude "0123456789")`}},
		{"no class", pw(Password{Length: 12}),
			[]string{"password: no character class enabled"}},
		{"negative minimum", pw(Password{Length: 12, Lower: ptr(-1), Upper: ptr(0)}),
			[]string{"password.lower: minimum -1 is negative"}},
		{"every password problem at once", pw(Password{Length: 4, Lower: ptr(-2), Upper: ptr(3), Digits: ptr(3), Exclude: digitChars}),
			[]string{
				"password.length: 4 is below the minimum 8",
				"password.lower: minimum -2 is negative",
				"password.digits: minimum 3 but every digit character is excluded",
				"password: class minimums add up to 6, more than length 4",
			}},
		{"random bad length and charset", Spec{Random: &Random{Length: 0, Charset: "aaa"}},
			[]string{"random.length: 0 is below the minimum 1", "random.charset: has 1 distinct characters, at least 2 are required"}},
		{"random too long", Spec{Random: &Random{Length: 5000, Charset: "ab"}},
			[]string{"random.length: 5000 is above the maximum 4096"}},
		{"random invalid utf8", Spec{Random: &Random{Length: 4, Charset: "ab\xff"}},
			[]string{"random.charset: not valid UTF-8"}},
		{"bytes bad length and encoding", Spec{Bytes: &Bytes{Length: 5000, Encoding: "base32"}},
			[]string{"bytes.length: 5000 is above the maximum 4096", `bytes.encoding: unknown encoding "base32"`}},
		{"bytes no encoding", Spec{Bytes: &Bytes{Length: 16}},
			[]string{"bytes.encoding: not set"}},
		{"template without fields", tmpl(),
			[]string{"template.fields: at least one field is required"}},
		{"duplicate names", tmpl(static("a", "x"), static("a", "y")),
			[]string{`template.fields[1].name: duplicate name "a" (also template.fields[0])`}},
		{"empty name", tmpl(static("", "x")),
			[]string{"template.fields[0].name: is empty"}},
		{"field without value", tmpl(Field{Name: "a"}),
			[]string{"template.fields[0]: no value: set one of static, generate or compose"}},
		{"field with two values", tmpl(Field{Name: "a", Static: ptr("x"), Compose: "y"}),
			[]string{"template.fields[0]: static, compose are all set: set only one"}},
		{"compose unknown field", tmpl(static("user", "u"), compose("dsn", "{{.user}}:{{.nope}}")),
			[]string{`template.fields[1].compose: refers to unknown field "nope"`}},
		{"compose unknown field by index", tmpl(compose("dsn", `{{index . "db-host"}}`)),
			[]string{`template.fields[0].compose: refers to unknown field "db-host"`}},
		{"compose unknown field via $", tmpl(compose("dsn", `{{if true}}{{$.missing}}{{end}}`)),
			[]string{`template.fields[0].compose: refers to unknown field "missing"`}},
		{"compose self", tmpl(compose("dsn", "x{{.dsn}}")),
			[]string{`template.fields[0].compose: refers to itself ("dsn")`}},
		{"compose cycle", tmpl(compose("a", "{{.b}}"), compose("b", "{{.a}}")),
			[]string{`template.fields[0].compose: compose cycle "a" -> "b" -> "a"`}},
		{"compose long cycle", tmpl(static("s", "x"), compose("a", "{{.s}}{{.c}}"), compose("b", "{{.a}}"), compose("c", "{{.b}}")),
			[]string{`template.fields[1].compose: compose cycle "a" -> "c" -> "b" -> "a"`}},
		{"compose parse error", tmpl(compose("a", "{{.b")),
			[]string{"template.fields[0].compose: template: fields[0]:1: unclosed action"}},
		{"compose bare dot", tmpl(compose("a", "{{.}}")),
			[]string{"template.fields[0].compose: refers to . as a whole"}},
		{"compose range", tmpl(static("b", "x"), compose("a", "{{range .b}}{{end}}")),
			[]string{"template.fields[1].compose: range actions are not supported"}},
		{"compose define", tmpl(compose("a", `{{define "x"}}y{{end}}z`)),
			[]string{"template.fields[0].compose: define and block actions are not supported"}},
		{"nested template", tmpl(Field{Name: "a", Generate: &Spec{Template: &Template{}}}),
			[]string{"template.fields[0].generate: a generated field cannot be a template"}},
		{"nested spec problems", tmpl(static("u", "x"), Field{Name: "p", Generate: &Spec{Password: &Password{Length: 4, Lower: ptr(0)}}}),
			[]string{"template.fields[1].generate.password.length: 4 is below the minimum 8"}},
		{"nested spec without kind", tmpl(Field{Name: "p", Generate: &Spec{}}),
			[]string{"template.fields[0].generate: no kind set"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.spec.Validate()
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tt.want)
			}
			got := problems(err)
			if len(got) != len(tt.want) {
				t.Fatalf("Validate() reported %d problems, want %d:\n%s", len(got), len(tt.want), strings.Join(got, "\n"))
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("problem %d = %q, want prefix %q", i, got[i], w)
				}
			}
			if v, gerr := Generate(tt.spec); gerr == nil || v != nil {
				t.Errorf("Generate() = %q, %v; want nil and an error", v, gerr)
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
	}{
		{"uuid", Spec{UUID: true}},
		{"password exact minimums", Spec{Password: &Password{Length: 8, Lower: ptr(2), Upper: ptr(2), Digits: ptr(2), Symbols: ptr(2)}}},
		{"password excluded class without minimum", Spec{Password: &Password{Length: 8, Lower: ptr(1), Digits: ptr(0), Exclude: digitChars}}},
		{"password max length", Spec{Password: &Password{Length: 1024, Symbols: ptr(0)}}},
		{"random", Spec{Random: &Random{Length: 1, Charset: "ab"}}},
		{"bytes", Spec{Bytes: &Bytes{Length: 4096, Encoding: "hex"}}},
		{"template", Spec{Template: &Template{Fields: []Field{
			{Name: "b", Compose: "{{.a}}"},
			{Name: "a", Static: ptr("")},
		}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.spec.Validate(); err != nil {
				t.Fatalf("Validate() = %v", err)
			}
			if _, err := Generate(tt.spec); err != nil {
				t.Fatalf("Generate() = %v", err)
			}
		})
	}
}

// checkPassword reports how pw fails p, or "" when it meets it.
func checkPassword(p *Password, pw []byte) string {
	if len(pw) != p.Length {
		return fmt.Sprintf("length %d, want %d", len(pw), p.Length)
	}
	classes := []struct {
		name  string
		chars string
		min   *int
	}{
		{"lower", lowerChars, p.Lower},
		{"upper", upperChars, p.Upper},
		{"digits", digitChars, p.Digits},
		{"symbols", symbolChars, p.Symbols},
	}
	counts := make([]int, len(classes))
	for _, c := range pw {
		if strings.IndexByte(p.Exclude, c) >= 0 { // passwords are ASCII; ASCII bytes never occur inside multi-byte runes
			return fmt.Sprintf("contains excluded character %q", c)
		}
		found := false
		for i, cl := range classes {
			if cl.min != nil && strings.IndexByte(cl.chars, c) >= 0 {
				counts[i]++
				found = true
			}
		}
		if !found {
			return fmt.Sprintf("contains %q, which is in no enabled class", c)
		}
	}
	for i, cl := range classes {
		if cl.min != nil && counts[i] < *cl.min {
			return fmt.Sprintf("%d %s characters, want at least %d", counts[i], cl.name, *cl.min)
		}
	}
	return ""
}

func TestPasswordMinimums(t *testing.T) {
	tests := []struct {
		name string
		p    Password
	}{
		{"all classes", Password{Length: 12, Lower: ptr(2), Upper: ptr(2), Digits: ptr(2), Symbols: ptr(2), Exclude: "\"'\\`"}},
		{"minimums fill length", Password{Length: 8, Lower: ptr(2), Upper: ptr(2), Digits: ptr(2), Symbols: ptr(2)}},
		{"heavy exclusions", Password{Length: 10, Lower: ptr(3), Digits: ptr(3), Symbols: ptr(0), Exclude: "abcdefghijklmnopqrstuvw012345678!#$%&()*+,-./:;<=>?@[]^_{|"}},
		{"no minimums", Password{Length: 16, Lower: ptr(0), Upper: ptr(0), Exclude: "lIO0"}},
		{"single class", Password{Length: 20, Digits: ptr(20)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := Spec{Password: &tt.p}
			for range 2000 {
				pw, err := Generate(spec)
				if err != nil {
					t.Fatalf("Generate() = %v", err)
				}
				if msg := checkPassword(&tt.p, pw); msg != "" {
					t.Fatalf("password %q: %s", pw, msg)
				}
			}
		})
	}
}

func TestRandomUniform(t *testing.T) {
	const charset, draws = "abcd", 40000
	counts := make(map[rune]int)
	spec := Spec{Random: &Random{Length: 4000, Charset: charset}}
	for range draws / 4000 {
		v, err := Generate(spec)
		if err != nil {
			t.Fatal(err)
		}
		if len(v) != 4000 {
			t.Fatalf("len = %d, want 4000", len(v))
		}
		for _, r := range string(v) {
			counts[r]++
		}
	}
	if len(counts) != len(charset) {
		t.Fatalf("saw characters %v, want exactly %q", counts, charset)
	}
	const expected = float64(draws) / 4
	chi2 := 0.0
	for _, r := range charset {
		n := float64(counts[r])
		if math.Abs(n-expected) > 0.05*expected {
			t.Errorf("%q drawn %v times, want %v ± 5%%", r, n, expected)
		}
		chi2 += (n - expected) * (n - expected) / expected
	}
	// 3 degrees of freedom: P(chi² > 40) is about 1e-8.
	if chi2 > 40 {
		t.Errorf("chi² = %.2f over counts %v, want below 40", chi2, counts)
	}
}

func TestRandomCharset(t *testing.T) {
	tests := []struct {
		charset string
		length  int
	}{
		{"ab", 1},
		{"aab", 64},
		{"äöü€😀", 100},
		{"0123456789abcdef", 4096},
	}
	for _, tt := range tests {
		t.Run(tt.charset, func(t *testing.T) {
			v, err := Generate(Spec{Random: &Random{Length: tt.length, Charset: tt.charset}})
			if err != nil {
				t.Fatal(err)
			}
			if n := utf8.RuneCount(v); n != tt.length {
				t.Errorf("%d characters, want %d", n, tt.length)
			}
			for _, r := range string(v) {
				if !strings.ContainsRune(tt.charset, r) {
					t.Fatalf("%q not in charset", r)
				}
			}
		})
	}
}

func TestBytes(t *testing.T) {
	decoders := map[string]func(string) ([]byte, error){
		"base64":    base64.StdEncoding.DecodeString,
		"base64url": base64.RawURLEncoding.DecodeString,
		"hex":       hex.DecodeString,
	}
	for _, enc := range []string{"base64", "base64url", "hex"} {
		for _, n := range []int{1, 2, 3, 16, 31, 32, 33, 4096} {
			t.Run(fmt.Sprintf("%s/%d", enc, n), func(t *testing.T) {
				v, err := Generate(Spec{Bytes: &Bytes{Length: n, Encoding: enc}})
				if err != nil {
					t.Fatal(err)
				}
				raw, err := decoders[enc](string(v))
				if err != nil {
					t.Fatalf("decoding %s: %v", enc, err)
				}
				if len(raw) != n {
					t.Errorf("decoded %d bytes, want %d", len(raw), n)
				}
				if enc == "base64url" && strings.ContainsAny(string(v), "=+/") {
					t.Errorf("base64url output %q has padding or std characters", v)
				}
			})
		}
	}
}

func TestUUID(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := make(map[string]bool)
	for range 1000 {
		v, err := Generate(Spec{UUID: true})
		if err != nil {
			t.Fatal(err)
		}
		if !re.Match(v) {
			t.Fatalf("%q is not a v4 UUID", v)
		}
		if seen[string(v)] {
			t.Fatalf("duplicate UUID %q", v)
		}
		seen[string(v)] = true
	}
}

// objectKeys decodes a JSON object of strings, returning its keys in order and its values.
func objectKeys(t *testing.T, data []byte) ([]string, map[string]string) {
	t.Helper()
	if !json.Valid(data) {
		t.Fatalf("invalid JSON: %s", data)
	}
	values := make(map[string]string)
	if err := json.Unmarshal(data, &values); err != nil {
		t.Fatalf("not an object of strings: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var keys []string
	if _, err := dec.Token(); err != nil { // {
		t.Fatal(err)
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		if _, err := dec.Token(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := dec.Token(); err != nil { // }
		t.Fatal(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("trailing data after the object: %v", err)
	}
	return keys, values
}

func TestTemplate(t *testing.T) {
	pwSpec := &Password{Length: 24, Lower: ptr(1), Upper: ptr(1), Digits: ptr(1), Symbols: ptr(1), Exclude: "@:/?#[]%"}
	tests := []struct {
		name     string
		fields   []Field
		wantKeys []string
		check    func(t *testing.T, v map[string]string)
	}{
		{
			name: "dsn",
			fields: []Field{
				{Name: "username", Static: ptr("app")},
				{Name: "password", Generate: &Spec{Password: pwSpec}},
				{Name: "dsn", Compose: "postgres://{{.username}}:{{.password}}@db:5432/app"},
			},
			wantKeys: []string{"username", "password", "dsn"},
			check: func(t *testing.T, v map[string]string) {
				if v["username"] != "app" {
					t.Errorf("username = %q", v["username"])
				}
				if msg := checkPassword(pwSpec, []byte(v["password"])); msg != "" {
					t.Errorf("password %q: %s", v["password"], msg)
				}
				if !strings.Contains(v["dsn"], v["username"]) || !strings.Contains(v["dsn"], v["password"]) {
					t.Errorf("dsn %q does not contain the username and password", v["dsn"])
				}
				if want := "postgres://app:" + v["password"] + "@db:5432/app"; v["dsn"] != want {
					t.Errorf("dsn = %q, want %q", v["dsn"], want)
				}
			},
		},
		{
			name: "composed from composed, declared first",
			fields: []Field{
				{Name: "url", Compose: `{{.base}}/{{index . "api-key"}}`},
				{Name: "base", Compose: "https://{{.host}}"},
				{Name: "host", Static: ptr("example.com")},
				{Name: "api-key", Generate: &Spec{Bytes: &Bytes{Length: 8, Encoding: "hex"}}},
				{Name: "id", Generate: &Spec{UUID: true}},
			},
			wantKeys: []string{"url", "base", "host", "api-key", "id"},
			check: func(t *testing.T, v map[string]string) {
				if want := "https://example.com/" + v["api-key"]; v["url"] != want || len(v["api-key"]) != 16 {
					t.Errorf("url = %q, api-key = %q, want url %q", v["url"], v["api-key"], want)
				}
			},
		},
		{
			name: "special characters are escaped",
			fields: []Field{
				{Name: "q\"uote", Static: ptr("a\"b\\c\n<&>")},
				{Name: "copy", Compose: `{{index . "q\"uote"}}{{if eq (len (index . "q\"uote")) 9}}!{{end}}`},
			},
			wantKeys: []string{"q\"uote", "copy"},
			check: func(t *testing.T, v map[string]string) {
				if v["copy"] != "a\"b\\c\n<&>!" {
					t.Errorf("copy = %q", v["copy"])
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Generate(Spec{Template: &Template{Fields: tt.fields}})
			if err != nil {
				t.Fatalf("Generate() = %v", err)
			}
			keys, values := objectKeys(t, out)
			if strings.Join(keys, ",") != strings.Join(tt.wantKeys, ",") {
				t.Errorf("keys = %q, want %q", keys, tt.wantKeys)
			}
			tt.check(t, values)
		})
	}
}

func TestTemplateCycleRejected(t *testing.T) {
	spec := Spec{Template: &Template{Fields: []Field{
		{Name: "password", Generate: &Spec{Random: &Random{Length: 16, Charset: "abc"}}},
		{Name: "a", Compose: "{{.password}}{{.b}}"},
		{Name: "b", Compose: "{{.c}}"},
		{Name: "c", Compose: "{{.a}}"},
	}}}
	v, err := Generate(spec)
	if err == nil || v != nil {
		t.Fatalf("Generate() = %q, %v; want a cycle error", v, err)
	}
	if !strings.Contains(err.Error(), `compose cycle "a" -> "b" -> "c" -> "a"`) {
		t.Errorf("error %q does not describe the cycle", err)
	}
}

func TestComposeExecutionErrorHidesValues(t *testing.T) {
	secret := "s3cr3t-static-value"
	spec := Spec{Template: &Template{Fields: []Field{
		{Name: "secret", Static: ptr(secret)},
		{Name: "bad", Compose: "{{index .secret 100}}"},
	}}}
	v, err := Generate(spec)
	if err == nil || v != nil {
		t.Fatalf("Generate() = %q, %v; want an execution error", v, err)
	}
	if !strings.HasPrefix(err.Error(), "template.fields[1].compose: ") || strings.Contains(err.Error(), secret) {
		t.Errorf("error = %q", err)
	}

	values := map[string]string{"a": "", "password": "hunter2"}
	if got := redact(errors.New("bad value hunter2"), values); strings.Contains(got, "hunter2") {
		t.Errorf("redact leaked the value: %q", got)
	}
	if got := redact(errors.New("index out of range: 100"), values); got != "index out of range: 100" {
		t.Errorf("redact(harmless) = %q", got)
	}
}

func TestShuffleUniform(t *testing.T) {
	// All 6 permutations of 3 elements should appear about equally often.
	const rounds = 12000
	counts := make(map[string]int)
	for range rounds {
		s := []byte("abc")
		if err := shuffle(s); err != nil {
			t.Fatal(err)
		}
		counts[string(s)]++
	}
	if len(counts) != 6 {
		t.Fatalf("saw %d permutations, want 6: %v", len(counts), counts)
	}
	for p, n := range counts {
		if n < 1800 || n > 2200 { // expected 2000, sd ≈ 41
			t.Errorf("permutation %s seen %d times, want about 2000", p, n)
		}
	}
}

func FuzzValidate(f *testing.F) {
	f.Add(16, 1, 1, 1, 1, uint8(0xf), "\"'\\`")
	f.Add(8, 2, 2, 2, 2, uint8(0xf), "")
	f.Add(8, 0, 0, 0, 9, uint8(0x8), "")
	f.Add(12, 0, 0, 3, 0, uint8(0x4), "0123456789")
	f.Add(12, 0, 0, 0, 0, uint8(0x4), "0123456789")
	f.Add(4, -1, math.MaxInt, math.MaxInt, 0, uint8(0xf), "abc")
	f.Add(1024, 100, 100, 100, 100, uint8(0xf), "\xff\x00é")
	f.Add(0, 0, 0, 0, 0, uint8(0), "")
	f.Fuzz(func(t *testing.T, length, lower, upper, digits, symbols int, mask uint8, exclude string) {
		p := &Password{Length: length, Exclude: exclude}
		if mask&1 != 0 {
			p.Lower = &lower
		}
		if mask&2 != 0 {
			p.Upper = &upper
		}
		if mask&4 != 0 {
			p.Digits = &digits
		}
		if mask&8 != 0 {
			p.Symbols = &symbols
		}
		spec := Spec{Password: p}
		if err := spec.Validate(); err != nil {
			for _, msg := range problems(err) {
				if !strings.HasPrefix(msg, "password") {
					t.Errorf("problem %q does not name its path", msg)
				}
			}
			if _, gerr := Generate(spec); gerr == nil {
				t.Fatalf("Validate() = %v but Generate() succeeded", err)
			}
			return
		}
		pw, err := Generate(spec)
		if err != nil {
			t.Fatalf("Validate() = nil but Generate() = %v", err)
		}
		if msg := checkPassword(p, pw); msg != "" {
			t.Fatalf("password %q for %+v: %s", pw, *p, msg)
		}
	})
}
