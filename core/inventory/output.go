package inventory

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
)

// findingKinds joins the kinds of the findings with sep.
func findingKinds(fs []Finding, sep string) string {
	kinds := make([]string, 0, len(fs))
	for _, f := range fs {
		kinds = append(kinds, f.Kind)
	}
	return strings.Join(kinds, sep)
}

// printable replaces control characters (tabs, newlines, escape sequences) so that a subject cannot
// break a table's layout or drive a terminal.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// WriteTable writes the entries as an aligned text table: cloud, location, name, subject, not after,
// days left, managed, findings.
func WriteTable(w io.Writer, entries []Entry) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLOUD\tLOCATION\tNAME\tSUBJECT\tNOT AFTER\tDAYS LEFT\tMANAGED\tFINDINGS")
	for _, e := range entries {
		findings := findingKinds(e.Findings, ",")
		if findings == "" {
			findings = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n",
			orDash(printable(e.Cloud)), orDash(printable(e.Location)), orDash(printable(e.Name)), orDash(printable(e.Subject)),
			e.NotAfter.UTC().Format(time.RFC3339), e.DaysLeft, yesNo(e.Managed), findings)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// WriteJSON writes the entries as an indented JSON array.
func WriteJSON(w io.Writer, entries []Entry) error {
	if entries == nil {
		entries = []Entry{}
	}
	out := make([]Entry, len(entries))
	for i, e := range entries {
		if e.Findings == nil {
			e.Findings = []Finding{}
		}
		out[i] = e
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// CSVHeader is the header row WriteCSV writes.
var CSVHeader = []string{"cloud", "location", "store", "name", "subject", "sans", "issuer", "serial", "not_before",
	"not_after", "days_left", "key_type", "signature_algorithm", "managed", "in_use", "status", "findings"}

// WriteCSV writes the entries as CSV with CSVHeader. Lists are joined with ";". A text cell that a
// spreadsheet would take for a formula (starting with = + - @, a tab or a carriage return) is prefixed
// with a single quote.
func WriteCSV(w io.Writer, entries []Entry) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	for _, e := range entries {
		details := make([]string, 0, len(e.Findings))
		for _, f := range e.Findings {
			details = append(details, f.Kind+": "+f.Detail)
		}
		row := []string{
			cell(e.Cloud), cell(e.Location), cell(e.Store), cell(e.Name), cell(e.Subject), cell(strings.Join(e.SANs, ";")),
			cell(e.Issuer), cell(e.Serial), e.NotBefore.UTC().Format(time.RFC3339), e.NotAfter.UTC().Format(time.RFC3339),
			strconv.Itoa(e.DaysLeft), cell(e.KeyType), cell(e.SignatureAlgorithm), strconv.FormatBool(e.Managed),
			cell(strings.Join(e.InUse, ";")), e.Status(), cell(strings.Join(details, ";")),
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func cell(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
