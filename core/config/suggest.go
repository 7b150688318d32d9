package config

import "strings"

// suggest returns the candidate closest to s, if one is close enough to be a likely misspelling.
func suggest(s string, candidates []string) string {
	if len(s) > 64 {
		return ""
	}
	norm := func(x string) string { return strings.ReplaceAll(strings.ToLower(x), "-", "_") }
	best, bestD := "", 1<<30
	for _, c := range candidates {
		d := distance(norm(s), norm(c))
		if d < bestD {
			best, bestD = c, d
		}
	}
	limit := max(1, min(3, len(best)/3))
	if bestD <= limit {
		return best
	}
	return ""
}

// distance is the optimal string alignment distance (Levenshtein plus transpositions) between a and b.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
