// Package audit holds keyferry's audit records: one structured record per decision that matters to an
// operator (a replica written, deleted, refused, a conflict found). Records name stores, secrets, versions
// and reasons; they never hold a value, and the types here accept none.
package audit

import (
	"context"
	"encoding/json"
	"io"
	"sync"
	"time"
)

// Record is one audit record.
type Record struct {
	Time          time.Time `json:"time"`
	Action        string    `json:"action"` // create, update, delete, conflict, refuse, skip, fail
	Rule          string    `json:"rule,omitempty"`
	SourceStore   string    `json:"source_store,omitempty"`
	SourceName    string    `json:"source_name,omitempty"`
	SourceVersion string    `json:"source_version,omitempty"`
	TargetStore   string    `json:"target_store,omitempty"`
	TargetName    string    `json:"target_name,omitempty"`
	TargetVersion string    `json:"target_version,omitempty"`
	Reason        string    `json:"reason,omitempty"`
}

// Sink receives audit records. Record must not block for long and must be safe for concurrent use.
type Sink interface {
	Record(ctx context.Context, r Record)
}

// Discard drops every record.
var Discard Sink = discard{}

type discard struct{}

func (discard) Record(context.Context, Record) {}

// NewJSONSink writes each record as one JSON line to w.
func NewJSONSink(w io.Writer) Sink { return &jsonSink{w: w} }

type jsonSink struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *jsonSink) Record(_ context.Context, r Record) {
	b, err := json.Marshal(struct {
		Audit bool `json:"audit"`
		Record
	}{true, r})
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, _ = s.w.Write(append(b, '\n'))
}

// Memory keeps records in memory, for tests and for the CLI's summary.
type Memory struct {
	mu      sync.Mutex
	records []Record
}

func (m *Memory) Record(_ context.Context, r Record) {
	m.mu.Lock()
	m.records = append(m.records, r)
	m.mu.Unlock()
}

// Records returns a copy of the records kept so far.
func (m *Memory) Records() []Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Record(nil), m.records...)
}
