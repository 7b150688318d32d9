package generate

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
)

// Validate reports every problem with the spec, as errors naming the field path (e.g. "password.length: 4
// is below the minimum 8"), without generating anything. An impossible spec (minimums that add up to more
// than Length; a class whose characters are all excluded but has a minimum; an empty charset after
// exclusions; a compose template referring to an unknown field or to itself or in a cycle; two fields with
// one name) is refused with a clear, specific message.
//
// The problems are joined with errors.Join; each one can be reached through Unwrap() []error.
func (s Spec) Validate() error {
	return errors.Join(s.validate("")...)
}

// join appends a path segment to a path.
func join(path, seg string) string {
	if path == "" {
		return seg
	}
	return path + "." + seg
}

// problem builds one validation error.
func problem(path, format string, args ...any) error {
	return fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...))
}

// validate returns the problems of s; path is where s sits ("" at the top).
func (s Spec) validate(path string) []error {
	self := path
	if self == "" {
		self = "spec"
	}
	var kinds []string
	if s.Password != nil {
		kinds = append(kinds, "password")
	}
	if s.Random != nil {
		kinds = append(kinds, "random")
	}
	if s.Bytes != nil {
		kinds = append(kinds, "bytes")
	}
	if s.UUID {
		kinds = append(kinds, "uuid")
	}
	if s.Template != nil {
		kinds = append(kinds, "template")
	}
	switch len(kinds) {
	case 0:
		return []error{problem(self, "no kind set: set exactly one of password, random, bytes, uuid or template")}
	case 1:
	default:
		return []error{problem(self, "%d kinds set (%s): set exactly one", len(kinds), strings.Join(kinds, ", "))}
	}
	switch {
	case s.Password != nil:
		return s.Password.validate(join(path, "password"))
	case s.Random != nil:
		return s.Random.validate(join(path, "random"))
	case s.Bytes != nil:
		return s.Bytes.validate(join(path, "bytes"))
	case s.Template != nil:
		errs, _ := s.Template.analyze(join(path, "template"))
		return errs
	}
	return nil // UUID has no settings
}

// checkRange reports a length outside [lo, hi].
func checkRange(path string, v, lo, hi int) error {
	switch {
	case v < lo:
		return problem(path, "%d is below the minimum %d", v, lo)
	case v > hi:
		return problem(path, "%d is above the maximum %d", v, hi)
	}
	return nil
}

func (p *Password) validate(path string) []error {
	var errs []error
	if err := checkRange(join(path, "length"), p.Length, minPasswordLength, maxPasswordLength); err != nil {
		errs = append(errs, err)
	}
	used, poolSize, total, overflow := 0, 0, 0, false
	for _, c := range p.classes() {
		if c.min == nil {
			continue
		}
		used++
		poolSize += len(c.chars)
		m := *c.min
		switch {
		case m < 0:
			errs = append(errs, problem(join(path, c.name), "minimum %d is negative", m))
			continue
		case m > 0 && len(c.chars) == 0:
			errs = append(errs, problem(join(path, c.name),
				"minimum %d but every %s character is excluded (exclude %q)", m, className(c.name), p.Exclude))
		}
		if m > math.MaxInt-total {
			overflow = true
		} else {
			total += m
		}
	}
	switch {
	case used == 0:
		errs = append(errs, problem(path, "no character class enabled: set at least one of lower, upper, digits or symbols"))
	case poolSize == 0:
		errs = append(errs, problem(path, "no characters remain after exclusions (exclude %q)", p.Exclude))
	}
	switch {
	case overflow:
		errs = append(errs, problem(path, "class minimums add up to more than length %d", p.Length))
	case total > p.Length:
		errs = append(errs, problem(path, "class minimums add up to %d, more than length %d", total, p.Length))
	}
	return errs
}

// className is the human name of a class, for messages.
func className(seg string) string {
	switch seg {
	case "lower":
		return "lowercase"
	case "upper":
		return "uppercase"
	case "digits":
		return "digit"
	}
	return "symbol"
}

func (r *Random) validate(path string) []error {
	var errs []error
	if err := checkRange(join(path, "length"), r.Length, minRandomLength, maxRandomLength); err != nil {
		errs = append(errs, err)
	}
	switch {
	case !utf8.ValidString(r.Charset):
		errs = append(errs, problem(join(path, "charset"), "not valid UTF-8"))
	case len(distinctRunes(r.Charset)) < 2:
		errs = append(errs, problem(join(path, "charset"), "has %d distinct characters, at least 2 are required",
			len(distinctRunes(r.Charset))))
	}
	return errs
}

func (b *Bytes) validate(path string) []error {
	var errs []error
	if err := checkRange(join(path, "length"), b.Length, minBytesLength, maxBytesLength); err != nil {
		errs = append(errs, err)
	}
	switch b.Encoding {
	case "base64", "base64url", "hex":
	case "":
		errs = append(errs, problem(join(path, "encoding"), "not set: use base64, base64url or hex"))
	default:
		errs = append(errs, problem(join(path, "encoding"), "unknown encoding %q: use base64, base64url or hex", b.Encoding))
	}
	return errs
}
