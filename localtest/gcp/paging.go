package gcp

import (
	"encoding/base64"
	"strings"
)

// Page sizes of the in-process emulators' List calls (Cloud KMS, Certificate Manager).
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// Paging checks page_size and page_token; the token is the last name of the previous page (a keyset, so
// creations and deletions between pages neither skip nor repeat entries) and must lie under prefix.
func Paging(pageSize int32, token, prefix string) (size int, after string, err error) {
	if pageSize < 0 {
		return 0, "", invalid("page_size must not be negative")
	}
	size = int(pageSize)
	if size == 0 {
		size = DefaultPageSize
	}
	size = min(size, MaxPageSize)
	if token != "" {
		b, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil || !strings.HasPrefix(string(b), prefix) {
			return 0, "", invalid("page_token is not valid for this request")
		}
		after = string(b)
	}
	return size, after, nil
}

// PageToken is the next_page_token after the page ending at last.
func PageToken(last string) string { return base64.RawURLEncoding.EncodeToString([]byte(last)) }
