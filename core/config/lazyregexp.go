package config

import (
	"regexp"
	"sync"
)

// lazyRegexp compiles pattern on first use. Patterns with large counted repetitions ({1,512}) compile to
// large programs: compiling them at package init cost the functions' cold start milliseconds and
// megabytes before the first event.
func lazyRegexp(pattern string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(pattern) })
}
