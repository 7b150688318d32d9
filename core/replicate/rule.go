// Package replicate plans and applies replication: copying secrets from a source store to its peers,
// any-to-any, without loops and without clobbering writes keyferry does not own. See
// docs/architecture.md ("Replication") for the semantics.
package replicate

// OnConflict says what to do when a replica was written by someone other than keyferry.
type OnConflict string

const (
	ConflictAlert     OnConflict = "alert"     // write nothing; emit an audit record and a notification (default)
	ConflictSkip      OnConflict = "skip"      // write nothing, quietly (the plan still says why)
	ConflictOverwrite OnConflict = "overwrite" // replace the foreign value with the source's
)

// DeletePolicy says what a source's deletion does to its replicas.
type DeletePolicy string

const (
	DeleteKeep      DeletePolicy = "keep"      // replicas stay (default)
	DeletePropagate DeletePolicy = "propagate" // replicas keyferry owns are deleted (softly where the store can)
)

// Granularity says what is copied.
type Granularity string

const (
	WholeValue Granularity = "value" // the value as it is (default)
	JSONKeys   Granularity = "keys"  // the source is a JSON object; only the listed keys are merged into the target's object
)

// Rule is one entry of `replicate:`.
type Rule struct {
	Name        string
	From        Source
	To          []Target
	OnConflict  OnConflict   // default ConflictAlert
	Delete      DeletePolicy // default DeleteKeep
	Granularity Granularity  // default WholeValue
	Keys        []string     // with JSONKeys: the keys copied ("" none = all keys)
	Line        int          // where the rule is in the configuration, for messages
}

// Source selects the secrets a rule replicates.
type Source struct {
	Store       string            // configured store name
	Match       []string          // name globs (github.com/gobwas/glob syntax, '/' separated); empty = every name
	Exclude     []string          // name globs excluded
	Tags        map[string]string // every tag must match (value "*" = present with any value)
	ExcludeTags map[string]string // any match excludes (e.g. no-sync: "true")
}

// Target is one peer a rule writes to.
type Target struct {
	Store string
	// Name is a Go text/template over NameData producing the target name; "" means "{{ .Name }}". The result
	// is then mapped through the target's declared name rules (characters it cannot hold become "-"),
	// deterministically; two sources mapping to one target name are refused at validate and plan time.
	Name string
	// Tags says which of the source's user tags are propagated and how their keys are renamed.
	Tags TagPolicy
}

// TagPolicy maps source tags onto a target's tags.
type TagPolicy struct {
	Propagate bool              // copy the source's user tags (subject to Include/Exclude/Rename)
	Include   []string          // only these keys (empty = all)
	Exclude   []string          // never these keys
	Rename    map[string]string // source key -> target key
	Set       map[string]string // fixed tags added on the target
}

// NameData is what a target name template sees.
type NameData struct {
	Name        string // source secret name, e.g. "prod/db/password"
	Base        string // last '/'-separated segment, e.g. "password"
	Dir         string // everything before it, e.g. "prod/db" ("" if none)
	SourceStore string // configured source store name
	TargetStore string // configured target store name
}
