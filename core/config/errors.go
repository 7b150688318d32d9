package config

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one problem in a configuration file, located at the line and column it concerns.
type Error struct {
	File   string // the file name as given to Load or Parse
	Line   int    // 1-based
	Column int    // 1-based
	// Path is the dotted path of the setting, e.g. "stores.azure.vault" ("" for the file as a whole).
	Path string
	// Message says what is wrong and how to fix it. It never holds a credential.
	Message string
}

func (e *Error) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Message)
	}
	return fmt.Sprintf("%s:%d:%d: %s: %s", e.File, e.Line, e.Column, e.Path, e.Message)
}

// Errors is every problem found in a configuration file, in file order. Parse and Load report all of
// them at once rather than stopping at the first.
type Errors []*Error

// Error prints one located error per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes each error to errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

func (es Errors) sort() {
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].Line != es[j].Line {
			return es[i].Line < es[j].Line
		}
		return es[i].Column < es[j].Column
	})
}
