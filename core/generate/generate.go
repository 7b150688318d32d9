// Package generate produces secret values for keyferry's rotation feature: passwords with per-class
// minimums, random strings over a charset, random bytes (base64 or hex), v4 UUIDs and JSON objects built
// from several such values (Template).
//
// All randomness comes from crypto/rand. Every selection is unbiased (crypto/rand.Int, never a modulo),
// and password positions are shuffled with a Fisher–Yates shuffle driven by crypto/rand.
//
// A Spec is checked by Spec.Validate without generating anything; Generate validates first. Errors name
// the path of the offending setting (for example "password.length" or
// "template.fields[2].compose") and never contain a generated value.
package generate

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// Spec says how to generate one value. Exactly one of the kinds is set.
type Spec struct {
	Password *Password
	Random   *Random   // random string over a charset
	Bytes    *Bytes    // random bytes, rendered base64 or hex
	UUID     bool      // a random (v4) UUID
	Template *Template // a JSON object with several fields
}

// Password is a password with optional minimum counts per character class.
//
// Classes are lower (a-z), upper (A-Z), digits (0-9) and symbols (!#$%&()*+,-./:;<=>?@[]^_{|}~), each
// minus Exclude. A class is used when its minimum is non-nil. The password holds at least the minimum of
// each class; the remaining positions are drawn uniformly from the union of the used classes, and the
// positions are then shuffled.
type Password struct {
	Length                        int    // 8..1024
	Lower, Upper, Digits, Symbols *int   // minimum count of each class; nil = class not used; 0 = allowed, no minimum
	Exclude                       string // characters never used (e.g. "\"'\\`")
}

// Random is a random string of Length characters drawn uniformly from the distinct characters of Charset.
type Random struct {
	Length  int    // 1..4096
	Charset string // at least 2 distinct characters (valid UTF-8); duplicates do not add weight
}

// Bytes is Length random bytes rendered as text.
type Bytes struct {
	Length   int    // 1..4096
	Encoding string // "base64" (standard, padded), "base64url" (URL alphabet, unpadded) or "hex"
}

// Template is a JSON object whose string fields are static, generated or composed from the other fields.
type Template struct {
	Fields []Field // output in this order as a JSON object
}

// Field is one field of a Template. Exactly one of Static, Generate and Compose is set.
type Field struct {
	Name     string
	Static   *string // a fixed value
	Generate *Spec   // a generated value (not a Template itself)
	// Compose is a Go text/template over the other fields' values, e.g.
	// "postgres://{{.username}}:{{.password}}@db:5432/app". Fields are referenced as {{.name}} (or
	// {{index . "name"}} for names that are not identifiers); range, with, define, block and template
	// actions are not supported.
	Compose string
}

// Limits.
const (
	minPasswordLength = 8
	maxPasswordLength = 1024
	minRandomLength   = 1
	maxRandomLength   = 4096
	minBytesLength    = 1
	maxBytesLength    = 4096
)

// Password character classes.
const (
	lowerChars  = "abcdefghijklmnopqrstuvwxyz"
	upperChars  = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	digitChars  = "0123456789"
	symbolChars = "!#$%&()*+,-./:;<=>?@[]^_{|}~"
)

// Generate returns the value (text). It calls Validate first.
func Generate(s Spec) ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s.generate()
}

// generate produces the value of a validated spec.
func (s Spec) generate() ([]byte, error) {
	switch {
	case s.Password != nil:
		return generatePassword(s.Password)
	case s.Random != nil:
		return generateRandom(s.Random)
	case s.Bytes != nil:
		return generateBytes(s.Bytes)
	case s.UUID:
		return generateUUID()
	case s.Template != nil:
		return generateTemplate(s.Template)
	}
	return nil, errors.New("spec: no kind set") // unreachable after Validate
}

// randIndex returns a uniform random integer in [0, n) from crypto/rand, without modulo bias.
func randIndex(n int) (int, error) {
	if n <= 0 {
		return 0, fmt.Errorf("generate: internal error: empty range %d", n)
	}
	v, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		return 0, fmt.Errorf("generate: reading randomness: %w", err)
	}
	return int(v.Int64()), nil
}

// pick returns one element of set, uniformly.
func pick[T any](set []T) (T, error) {
	i, err := randIndex(len(set))
	if err != nil {
		var zero T
		return zero, err
	}
	return set[i], nil
}

// shuffle permutes s uniformly (Fisher–Yates with crypto/rand).
func shuffle[T any](s []T) error {
	for i := len(s) - 1; i > 0; i-- {
		j, err := randIndex(i + 1)
		if err != nil {
			return err
		}
		s[i], s[j] = s[j], s[i]
	}
	return nil
}

// passwordClass is one character class of a Password after exclusions.
type passwordClass struct {
	name  string // path segment: "lower", "upper", "digits", "symbols"
	min   *int
	all   string // the class's characters before exclusions
	chars []byte // the class's characters minus Exclude
}

// classes returns the four classes of p, with Exclude applied.
func (p *Password) classes() []passwordClass {
	cs := []passwordClass{
		{name: "lower", min: p.Lower, all: lowerChars},
		{name: "upper", min: p.Upper, all: upperChars},
		{name: "digits", min: p.Digits, all: digitChars},
		{name: "symbols", min: p.Symbols, all: symbolChars},
	}
	for i := range cs {
		for j := 0; j < len(cs[i].all); j++ {
			if c := cs[i].all[j]; !strings.ContainsRune(p.Exclude, rune(c)) {
				cs[i].chars = append(cs[i].chars, c)
			}
		}
	}
	return cs
}

func generatePassword(p *Password) ([]byte, error) {
	out := make([]byte, 0, p.Length)
	var pool []byte
	for _, c := range p.classes() {
		if c.min == nil || len(c.chars) == 0 {
			continue
		}
		pool = append(pool, c.chars...)
		for range *c.min {
			ch, err := pick(c.chars)
			if err != nil {
				return nil, err
			}
			out = append(out, ch)
		}
	}
	for len(out) < p.Length {
		ch, err := pick(pool)
		if err != nil {
			return nil, err
		}
		out = append(out, ch)
	}
	if err := shuffle(out); err != nil {
		return nil, err
	}
	return out, nil
}

// distinctRunes returns the distinct runes of s in order of first appearance.
func distinctRunes(s string) []rune {
	seen := make(map[rune]bool)
	var out []rune
	for _, r := range s {
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out
}

func generateRandom(r *Random) ([]byte, error) {
	set := distinctRunes(r.Charset)
	var b strings.Builder
	for range r.Length {
		ch, err := pick(set)
		if err != nil {
			return nil, err
		}
		b.WriteRune(ch)
	}
	return []byte(b.String()), nil
}

func generateBytes(b *Bytes) ([]byte, error) {
	raw := make([]byte, b.Length)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("generate: reading randomness: %w", err)
	}
	switch b.Encoding {
	case "base64":
		return []byte(base64.StdEncoding.EncodeToString(raw)), nil
	case "base64url":
		return []byte(base64.RawURLEncoding.EncodeToString(raw)), nil
	case "hex":
		return []byte(hex.EncodeToString(raw)), nil
	}
	return nil, fmt.Errorf("bytes.encoding: unknown encoding %q", b.Encoding) // unreachable after Validate
}

func generateUUID() ([]byte, error) {
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		return nil, fmt.Errorf("generate: reading randomness: %w", err)
	}
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // variant 10 (RFC 9562)
	return fmt.Appendf(nil, "%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16]), nil
}

// jsonString encodes s as a JSON string without HTML escaping.
func jsonString(buf *bytes.Buffer, s string) error {
	var tmp bytes.Buffer
	enc := json.NewEncoder(&tmp)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return err
	}
	buf.Write(bytes.TrimSuffix(tmp.Bytes(), []byte("\n")))
	return nil
}
