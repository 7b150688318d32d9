package store

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// BinaryMode says how a store holds binary values.
type BinaryMode int

const (
	// BinaryNative: the store holds arbitrary bytes as they are.
	BinaryNative BinaryMode = iota
	// BinaryBase64: the store holds strings only; keyferry writes binary values as standard base64 and
	// marks them (content type, field or tag, documented per adapter) so that they read back as binary.
	BinaryBase64
	// BinaryUnsupported: the store holds text only and has nowhere to mark an encoding; binary is refused.
	BinaryUnsupported
)

func (m BinaryMode) String() string {
	switch m {
	case BinaryNative:
		return "native"
	case BinaryBase64:
		return "base64"
	default:
		return "unsupported"
	}
}

// Limits are what a store can hold. They are declared by each adapter and checked before any call
// goes out, so a value or name the store cannot hold is refused with a clear error and nothing is sent.
type Limits struct {
	NamePattern     *regexp.Regexp // whole-name pattern (anchored)
	NameRule        string         // the pattern in words, for messages
	NameMinLen      int
	NameMaxLen      int
	CaseInsensitive bool // names differing only in case are the same secret

	MaxValueBytes int        // largest stored value in bytes (after any base64 encoding)
	Binary        BinaryMode // how binary values are held

	MaxTags         int            // 0: no tags at all; <0: unlimited
	TagKeyPattern   *regexp.Regexp // nil: any
	TagValuePattern *regexp.Regexp // nil: any
	TagRule         string         // the tag rules in words
	TagKeyMaxLen    int            // 0: unlimited
	TagValueMaxLen  int            // 0: unlimited
	ReservedPrefix  []string       // tag key prefixes users may not set (e.g. "aws:")
	// ProvenanceApart is true when the store keeps provenance somewhere other than the user's tags
	// (GCP annotations beside labels), so provenance does not count against MaxTags.
	ProvenanceApart bool
	// MetadataPerVersion is true when tags (and so provenance) belong to each version rather than to the
	// secret (Azure Key Vault): a version written by anyone else carries none of keyferry's entries.
	MetadataPerVersion bool
}

// StoredSize is how many bytes v takes in the store, after any encoding the adapter applies.
func (l Limits) StoredSize(v Value) int {
	if v.IsBinary() && l.Binary == BinaryBase64 {
		return base64.StdEncoding.EncodedLen(v.Len())
	}
	return v.Len()
}

// MaxRawBytes is the largest value of the given kind the store can hold, before encoding.
func (l Limits) MaxRawBytes(binary bool) int {
	if binary && l.Binary == BinaryBase64 {
		return l.MaxValueBytes / 4 * 3
	}
	return l.MaxValueBytes
}

// CheckName refuses a name the store cannot hold.
func (l Limits) CheckName(name string) error {
	n := utf8.RuneCountInString(name)
	switch {
	case n < max(l.NameMinLen, 1):
		return &Error{Kind: ErrInvalidName, Detail: "empty name", Hint: "give the secret a name"}
	case l.NameMaxLen > 0 && n > l.NameMaxLen:
		return &Error{Kind: ErrInvalidName, Detail: fmt.Sprintf("name is %d characters, the limit is %d", n, l.NameMaxLen),
			Hint: "use a shorter name or map it with a naming template"}
	case l.NamePattern != nil && !l.NamePattern.MatchString(name):
		return &Error{Kind: ErrInvalidName, Detail: "name breaks the store's rule: " + l.NameRule,
			Hint: "rename it or map it with a naming template"}
	}
	return nil
}

// CheckValue refuses a value the store cannot hold.
func (l Limits) CheckValue(v Value) error {
	if err := v.Validate(); err != nil {
		return &Error{Kind: ErrInvalidValue, Detail: err.Error()}
	}
	if v.IsBinary() && l.Binary == BinaryUnsupported {
		return &Error{Kind: ErrInvalidValue, Detail: "the store holds text only and cannot mark a binary value",
			Hint: "replicate binary values to a store that holds binary, or encode them as text at the source"}
	}
	if l.MaxValueBytes > 0 {
		if size := l.StoredSize(v); size > l.MaxValueBytes {
			d := fmt.Sprintf("%s value is %d bytes", v.Kind(), v.Len())
			if size != v.Len() {
				d += fmt.Sprintf(" (%d bytes once base64-encoded)", size)
			}
			return &Error{Kind: ErrTooLarge, Detail: fmt.Sprintf("%s, the store holds at most %d", d, l.MaxValueBytes),
				Hint: "shrink the value or keep it out of this store"}
		}
	}
	return nil
}

// CheckTags refuses tags the store cannot hold. reserved are keys keyferry itself writes (provenance),
// which count against the store's tag limit.
func (l Limits) CheckTags(tags map[string]string, reserved int) error {
	if len(tags) == 0 {
		return nil
	}
	if l.MaxTags == 0 {
		return &Error{Kind: ErrInvalidTags, Detail: "the store holds no tags"}
	}
	if l.MaxTags > 0 && len(tags)+reserved > l.MaxTags {
		return &Error{Kind: ErrInvalidTags,
			Detail: fmt.Sprintf("%d tags plus %d keyferry metadata entries exceed the store's %d", len(tags), reserved, l.MaxTags),
			Hint:   "propagate fewer tags to this store"}
	}
	for k, v := range tags {
		if strings.HasPrefix(strings.ToLower(k), ProvenancePrefix) {
			return &Error{Kind: ErrInvalidTags, Detail: fmt.Sprintf("tag key %q uses keyferry's reserved prefix %q", k, ProvenancePrefix)}
		}
		for _, p := range l.ReservedPrefix {
			if strings.HasPrefix(strings.ToLower(k), strings.ToLower(p)) {
				return &Error{Kind: ErrInvalidTags, Detail: fmt.Sprintf("tag key %q uses the reserved prefix %q", k, p)}
			}
		}
		if k == "" || (l.TagKeyMaxLen > 0 && utf8.RuneCountInString(k) > l.TagKeyMaxLen) ||
			(l.TagKeyPattern != nil && !l.TagKeyPattern.MatchString(k)) {
			return &Error{Kind: ErrInvalidTags, Detail: fmt.Sprintf("tag key %q breaks the store's rule: %s", k, l.TagRule)}
		}
		if (l.TagValueMaxLen > 0 && utf8.RuneCountInString(v) > l.TagValueMaxLen) ||
			(l.TagValuePattern != nil && !l.TagValuePattern.MatchString(v)) {
			return &Error{Kind: ErrInvalidTags, Detail: fmt.Sprintf("value of tag %q breaks the store's rule: %s", k, l.TagRule)}
		}
	}
	return nil
}

// CanonicalName is the name as the store compares it (lower-cased for case-insensitive stores).
func (l Limits) CanonicalName(name string) string {
	if l.CaseInsensitive {
		return strings.ToLower(name)
	}
	return name
}
