package store

import (
	"fmt"
	"log/slog"
	"unicode/utf8"
)

// Value is a secret value: exact bytes plus whether they are text or binary.
//
// A Value never prints its bytes: String, GoString, Format and LogValue all render a redacted
// summary, so a value that slips into a log line, an error or a panic message does not leak.
type Value struct {
	data   []byte
	binary bool
}

// Text returns a text value. Text must be valid UTF-8; use Binary for anything else.
func Text(s string) Value { return Value{data: []byte(s)} }

// Binary returns a binary value holding a copy of b.
func Binary(b []byte) Value { return Value{data: append([]byte{}, b...), binary: true} }

// Bytes returns the exact bytes of the value. The caller must not modify them.
func (v Value) Bytes() []byte { return v.data }

// Len is the value's size in bytes.
func (v Value) Len() int { return len(v.data) }

// IsBinary reports whether the value is binary (opaque bytes) rather than text.
func (v Value) IsBinary() bool { return v.binary }

// Kind names the value's kind for messages: "text" or "binary".
func (v Value) Kind() string {
	if v.binary {
		return "binary"
	}
	return "text"
}

// Equal reports whether two values have the same kind and the same bytes.
func (v Value) Equal(o Value) bool {
	return v.binary == o.binary && string(v.data) == string(o.data)
}

// Validate checks that a text value is valid UTF-8.
func (v Value) Validate() error {
	if !v.binary && !utf8.Valid(v.data) {
		return fmt.Errorf("text value is not valid UTF-8: store it as binary")
	}
	return nil
}

// String renders a redacted summary, never the bytes.
func (v Value) String() string {
	return fmt.Sprintf("[redacted %s value, %d bytes]", v.Kind(), len(v.data))
}

// GoString renders the same redacted summary for %#v.
func (v Value) GoString() string { return v.String() }

// Format makes every fmt verb print the redacted summary.
func (v Value) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(v.String())) }

// LogValue makes slog print the redacted summary.
func (v Value) LogValue() slog.Value { return slog.StringValue(v.String()) }

// MarshalJSON refuses to serialise the value, so it cannot leave through JSON by accident.
func (v Value) MarshalJSON() ([]byte, error) { return []byte(`"[redacted]"`), nil }
