// Package bench holds keyferry's benchmarks. They are not tests: `make bench` runs each once
// (-benchtime 1x) and they print ratios measured within the same run, so a noisy machine shifts both
// sides of each ratio alike.
package bench
