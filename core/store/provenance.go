package store

import (
	"strings"
	"time"
)

// Provenance is keyferry's record, kept in a replica's own metadata (AWS tags, Azure tags, GCP
// annotations, Vault custom metadata, the file store's metadata file), of where its current value came from.
// It is enough to decide, without any database, whether a replica is current, whether someone else wrote
// it, and whether an event is the echo of keyferry's own write. It never holds value-derived data.
//
// Source* name the ORIGIN of the value: the store, secret and version where it was last written by someone
// other than keyferry. A replica of a replica carries the same origin, which is what makes chains and
// meshes (A↔B↔C) loop-free: a target whose origin already matches is unchanged.
type Provenance struct {
	SourceStore    string    // configured name of the origin store
	SourceName     string    // secret name in the origin store
	SourceVersion  string    // origin version that was copied
	ReplicaVersion string    // version keyferry wrote in this store ("" until known)
	Written        time.Time // when the origin version was written (orders concurrent changes)

	// Synced is kept on a SOURCE secret: the source version whose replication finished, and a fingerprint
	// of the rules that replicated it ("<version>/<fingerprint>"). A sweep skips a source whose mark
	// matches its current version and the current rules, so a sweep over unchanged secrets reads nothing
	// but the source listing. A Provenance holding only Synced describes a secret keyferry did not write.
	Synced string
}

// Origin reports whether p records where the value came from (as opposed to only a Synced mark).
func (p *Provenance) Origin() bool { return p != nil && (p.SourceStore != "" || p.SourceName != "") }

// ProvenancePrefix starts every metadata key keyferry writes; users' tags may not use it.
const ProvenancePrefix = "keyferry-"

// Metadata keys of the provenance record. They satisfy every store's key rules (AWS and SSM tags,
// Azure tags, GCP annotations, Vault custom metadata).
const (
	KeySourceStore    = ProvenancePrefix + "source-store"
	KeySourceName     = ProvenancePrefix + "source-name"
	KeySourceVersion  = ProvenancePrefix + "source-version"
	KeyReplicaVersion = ProvenancePrefix + "replica-version"
	KeyWritten        = ProvenancePrefix + "written"
	KeySynced         = ProvenancePrefix + "synced"
)

var provenanceKeys = []string{KeySourceStore, KeySourceName, KeySourceVersion, KeyReplicaVersion, KeyWritten, KeySynced}

// ProvenanceEntries is how many metadata entries p takes in a store.
func ProvenanceEntries(p *Provenance) int {
	if p == nil {
		return 0
	}
	return len(p.Entries())
}

// Entries encodes p as metadata entries (empty fields are left out).
func (p *Provenance) Entries() map[string]string {
	if p == nil {
		return nil
	}
	m := map[string]string{}
	set := func(k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	set(KeySourceStore, p.SourceStore)
	set(KeySourceName, p.SourceName)
	set(KeySourceVersion, p.SourceVersion)
	set(KeyReplicaVersion, p.ReplicaVersion)
	if !p.Written.IsZero() {
		m[KeyWritten] = p.Written.UTC().Format(time.RFC3339Nano)
	}
	set(KeySynced, p.Synced)
	return m
}

// SplitProvenance separates keyferry's provenance entries from user tags in a store's metadata map.
// It returns nil provenance when the map holds no provenance record.
func SplitProvenance(all map[string]string) (tags map[string]string, p *Provenance) {
	tags = map[string]string{}
	for k, v := range all {
		if !strings.HasPrefix(k, ProvenancePrefix) {
			tags[k] = v
		}
	}
	if all[KeySourceStore] == "" && all[KeySourceName] == "" {
		if all[KeySynced] != "" {
			return tags, &Provenance{Synced: all[KeySynced]}
		}
		return tags, nil
	}
	p = &Provenance{
		SourceStore:    all[KeySourceStore],
		SourceName:     all[KeySourceName],
		SourceVersion:  all[KeySourceVersion],
		ReplicaVersion: all[KeyReplicaVersion],
		Synced:         all[KeySynced],
	}
	if t, err := time.Parse(time.RFC3339Nano, all[KeyWritten]); err == nil {
		p.Written = t
	}
	return tags, p
}

// MergeTags returns user tags plus provenance entries, ready to write as one map.
func MergeTags(tags map[string]string, p *Provenance) map[string]string {
	out := make(map[string]string, len(tags)+len(provenanceKeys))
	for k, v := range tags {
		out[k] = v
	}
	for k, v := range p.Entries() {
		out[k] = v
	}
	return out
}

// Fields of the provenance record, for adapters that need to map keys (e.g. SSM tag keys).
func ProvenanceKeys() []string { return append([]string(nil), provenanceKeys...) }

// PendingSuffix ends the name of the sibling secret that holds a rotation's pending value in stores without
// version stages (core/rotate). Replication never copies such secrets.
const PendingSuffix = "--keyferry-pending"

// StatePrefix starts the tag keys that hold keyferry's own state outside the provenance record (rotation
// leases and times). Tag propagation never copies them.
const StatePrefix = "keyferry_"
