package azkv

import (
	"crypto/rand"
	"encoding/hex"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
)

// The object model is shared by every Key Vault object kind (secrets now; keys and certificates can
// reuse it with their own payload type P): versioned objects with names compared case-insensitively,
// attributes and tags per version, and the soft-delete lifecycle with its asynchronous transitions.

// attributes are the management attributes of one version (unix seconds, as the service sends them).
type attributes struct {
	Enabled   bool
	NotBefore *int64
	Expires   *int64
	Created   int64
	Updated   int64
}

type version[P any] struct {
	ID      string // 32 lower-case hex digits
	Attrs   attributes
	Tags    map[string]string
	Payload P
}

// deletion is the soft-delete record of an object.
type deletion struct {
	Date           int64     // deletedDate
	ScheduledPurge int64     // scheduledPurgeDate
	ReadyAt        time.Time // the delete has completed (GET deleted* answers) from then on
	PurgeDoneAt    time.Time // zero: no purge requested; else the purge completes then
}

type object[P any] struct {
	Name          string // the name as first created (identity is case-insensitive)
	Versions      map[string]*version[P]
	Latest        string // id of the most recently created version
	Deleted       *deletion
	RecoverDoneAt time.Time // a recover completes then
}

// state is where an object is in its lifecycle at a given time.
type state int

const (
	stateAbsent     state = iota // no such object (or purged)
	stateActive                  // readable and writable
	stateRecovering              // recover requested, not yet complete: reads 404, writes 409
	stateDeleting                // delete requested, not yet complete: reads 404, GET deleted 404, writes 409
	stateDeleted                 // soft-deleted: GET deleted answers; writes 409 ObjectIsDeletedButRecoverable
	statePurging                 // purge requested, not yet complete: everything 404 but writes 409
)

func (o *object[P]) state(now time.Time) state {
	if o == nil {
		return stateAbsent
	}
	if d := o.Deleted; d != nil {
		switch {
		case !d.PurgeDoneAt.IsZero() && !now.Before(d.PurgeDoneAt):
			return stateAbsent
		case now.Unix() >= d.ScheduledPurge:
			return stateAbsent
		case !d.PurgeDoneAt.IsZero():
			return statePurging
		case now.Before(d.ReadyAt):
			return stateDeleting
		}
		return stateDeleted
	}
	if now.Before(o.RecoverDoneAt) {
		return stateRecovering
	}
	return stateActive
}

func (o *object[P]) latest() *version[P] { return o.Versions[o.Latest] }

// collection holds the objects of one kind, keyed by lower-cased name.
type collection[P any] struct {
	objects map[string]*object[P]
}

func newCollection[P any]() *collection[P] {
	return &collection[P]{objects: map[string]*object[P]{}}
}

// get returns the object for name and its state, dropping it if it has been purged.
func (c *collection[P]) get(name string, now time.Time) (*object[P], state) {
	key := strings.ToLower(name)
	o := c.objects[key]
	st := o.state(now)
	if o != nil && st == stateAbsent {
		delete(c.objects, key)
		return nil, stateAbsent
	}
	return o, st
}

// addVersion creates the object if needed and adds a new latest version.
func (c *collection[P]) addVersion(name string, v *version[P]) *object[P] {
	key := strings.ToLower(name)
	o := c.objects[key]
	if o == nil {
		o = &object[P]{Name: name, Versions: map[string]*version[P]{}}
		c.objects[key] = o
	}
	o.Versions[v.ID] = v
	o.Latest = v.ID
	return o
}

// inState returns the objects in state st, sorted by lower-cased name (the service's list order).
func (c *collection[P]) inState(st state, now time.Time) []*object[P] {
	keys := slices.Sorted(maps.Keys(c.objects))
	var out []*object[P]
	for _, k := range keys {
		if o, s := c.get(k, now); o != nil && s == st {
			out = append(out, o)
		}
	}
	return out
}

// sortedVersions returns an object's versions ordered by version id, as the real service lists them
// (not by creation time).
func sortedVersions[P any](o *object[P]) []*version[P] {
	ids := slices.Sorted(maps.Keys(o.Versions))
	out := make([]*version[P], 0, len(ids))
	for _, id := range ids {
		out = append(out, o.Versions[id])
	}
	return out
}

// newVersionID returns a new 32-hex-digit version id.
func newVersionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// validName reports whether name is a valid object name: 1-127 characters of 0-9, a-z, A-Z and -.
func validName(name string) bool {
	if len(name) < 1 || len(name) > 127 {
		return false
	}
	for _, r := range name {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-') {
			return false
		}
	}
	return true
}

// deletedRoutes are one object kind's soft-delete endpoints (deletedsecrets, deletedcertificates,
// deletedkeys): the RBAC actions and the handlers.
type deletedRoutes struct {
	read, purge, recover string
	list                 func(http.ResponseWriter, *http.Request)
	get, doPurge         func(http.ResponseWriter, string)
	doRecover            func(http.ResponseWriter, string)
	notFound             func(http.ResponseWriter, string)
}

// routeDeleted serves GET deletedX (list), GET and DELETE deletedX/{name} (get, purge) and
// POST deletedX/{name}/recover, the same way for every kind.
func (s *Server) routeDeleted(w http.ResponseWriter, r *http.Request, rest []string, d deletedRoutes) {
	if len(rest) == 0 || len(rest) == 1 && rest[0] == "" {
		if r.Method != http.MethodGet {
			methodNotAllowed(w, r)
			return
		}
		if s.authorize(w, r, d.read) {
			d.list(w, r)
		}
		return
	}
	name := rest[0]
	if !validName(name) {
		badName(w, name)
		return
	}
	switch {
	case len(rest) == 1 && r.Method == http.MethodGet:
		if s.authorize(w, r, d.read) {
			d.get(w, name)
		}
	case len(rest) == 1 && r.Method == http.MethodDelete:
		if s.authorize(w, r, d.purge) {
			d.doPurge(w, name)
		}
	case len(rest) == 2 && rest[1] == "recover" && r.Method == http.MethodPost:
		if s.authorize(w, r, d.recover) {
			d.doRecover(w, name)
		}
	case len(rest) <= 2:
		methodNotAllowed(w, r)
	default:
		d.notFound(w, name)
	}
}
