package vaultkv

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"unicode"
	"unicode/utf8"

	"github.com/keyferry/keyferry/core/store"
)

// Fields of keyferry's value convention in a version's data map.
const (
	fieldValue    = "value"
	fieldEncoding = "encoding"
	encodingB64   = "base64"
)

// ContentTypeJSON is the content type of a value read from a data map in another shape.
const ContentTypeJSON = "application/json"

const (
	// MaxValueBytes is the largest value as stored (binary counted once base64-encoded).
	MaxValueBytes = 768 << 10
	// MaxDataJSONBytes bounds the JSON form of a version's data map, as Vault stores it.
	MaxDataJSONBytes = 960 << 10
	// MaxNameLen is keyferry's bound on a secret's path below the mount.
	MaxNameLen = 512

	maxCustomMetadata      = 64
	maxCustomMetadataKey   = 128
	maxCustomMetadataValue = 512
)

const segment = `[A-Za-z0-9_.@=-]*[A-Za-z0-9_@=-][A-Za-z0-9_.@=-]*`

var (
	namePattern = regexp.MustCompile(`^` + segment + `(/` + segment + `)*$`)
	// printable is unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space.
	printable = regexp.MustCompile(`^[\pL\pM\pN\pP\pS ]+$`)
)

// limits are Vault KV v2's limits as this adapter declares them (see the package doc).
var limits = store.Limits{
	NamePattern: namePattern,
	NameRule: `segments of letters, digits and "_ . @ = -" separated by "/", no empty segment, ` +
		`no segment of dots only, at most 512 characters, case-sensitive`,
	NameMinLen:      1,
	NameMaxLen:      MaxNameLen,
	CaseInsensitive: false,
	MaxValueBytes:   MaxValueBytes,
	Binary:          store.BinaryBase64,
	MaxTags:         maxCustomMetadata,
	TagKeyPattern:   printable,
	TagValuePattern: printable,
	TagRule: "custom_metadata: at most 64 entries including keyferry's, keys 1–128 bytes, values 1–512 bytes, " +
		"printable characters only",
	TagKeyMaxLen:   maxCustomMetadataKey,
	TagValueMaxLen: maxCustomMetadataValue,
}

// encodeValue is the data map keyferry writes for v.
func encodeValue(v store.Value) map[string]any {
	if v.IsBinary() {
		return map[string]any{fieldValue: base64.StdEncoding.EncodeToString(v.Bytes()), fieldEncoding: encodingB64}
	}
	return map[string]any{fieldValue: string(v.Bytes())}
}

// decodeValue reads a version's data map back into a value (see the package doc).
func decodeValue(data map[string]any) (v store.Value, contentType string, err error) {
	if s, ok := data[fieldValue].(string); ok {
		switch len(data) {
		case 1:
			return store.Text(s), "", nil
		case 2:
			if enc, _ := data[fieldEncoding].(string); enc == encodingB64 {
				if b, err := base64.StdEncoding.Strict().DecodeString(s); err == nil {
					return store.Binary(b), "", nil
				}
			}
		}
	}
	js, err := marshalJSON(data)
	if err != nil {
		return store.Value{}, "", err
	}
	return store.Text(string(js)), ContentTypeJSON, nil
}

// marshalJSON renders data with sorted keys and without HTML escaping.
func marshalJSON(data map[string]any) ([]byte, error) {
	if data == nil {
		data = map[string]any{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(data); err != nil {
		return nil, fmt.Errorf("render the secret's fields as JSON: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// checkStoredSize refuses a data map whose JSON form, as Vault stores it, is too large.
func checkStoredSize(v store.Value, data map[string]any) error {
	js, err := json.Marshal(data) // Vault's own encoding (HTML-escaped)
	if err != nil {
		return &store.Error{Kind: store.ErrInvalidValue, Detail: "cannot encode the value as JSON"}
	}
	if len(js) > MaxDataJSONBytes {
		return &store.Error{Kind: store.ErrTooLarge,
			Detail: fmt.Sprintf("%s value is %d bytes but %d bytes as Vault stores it (JSON-escaped), the store holds at most %d",
				v.Kind(), v.Len(), len(js), MaxDataJSONBytes),
			Hint: "shrink the value, or store it as binary (base64 is not escaped)"}
	}
	return nil
}

// checkCustomMetadata applies Vault's byte-length and printability rules to the full custom_metadata map
// (user tags and the provenance record), which store.Limits counts in characters and for user tags only.
func checkCustomMetadata(m map[string]string) error {
	if len(m) > maxCustomMetadata {
		return &store.Error{Kind: store.ErrInvalidTags,
			Detail: fmt.Sprintf("%d custom_metadata entries (tags and keyferry's record), Vault holds at most %d", len(m), maxCustomMetadata),
			Hint:   "propagate fewer tags to this store"}
	}
	for k, v := range m {
		switch {
		case len(k) == 0 || len(k) > maxCustomMetadataKey:
			return &store.Error{Kind: store.ErrInvalidTags,
				Detail: fmt.Sprintf("custom_metadata key %q is %d bytes, Vault allows 1–%d", k, len(k), maxCustomMetadataKey)}
		case len(v) == 0 || len(v) > maxCustomMetadataValue:
			return &store.Error{Kind: store.ErrInvalidTags,
				Detail: fmt.Sprintf("value of custom_metadata key %q is %d bytes, Vault allows 1–%d", k, len(v), maxCustomMetadataValue)}
		case !isPrint(k):
			return &store.Error{Kind: store.ErrInvalidTags, Detail: fmt.Sprintf("custom_metadata key %q has unprintable characters", k)}
		case !isPrint(v):
			return &store.Error{Kind: store.ErrInvalidTags, Detail: fmt.Sprintf("value of custom_metadata key %q has unprintable characters", k)}
		}
	}
	return nil
}

func isPrint(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
