package file

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/keyferry/keyferry/core/store"
)

// Names inside a secret's "~s" directory. None of them can be a name segment ("~" is not allowed in one).
const (
	secretSub  = "~s"
	metaFile   = "meta.json"
	lockFile   = "lock"
	tmpPrefix  = "~tmp-"
	valuePrefx = "v"
)

// formatVersion is the version of the metadata file format this code writes and reads.
const formatVersion = 1

// secretDir is the "~s" directory of a name that passed the name rule, relative to the root.
func secretDir(name string) string { return path.Join(secretsDir, name, secretSub) }

func metaPath(dir string) string         { return dir + "/" + metaFile }
func valuePath(dir string, v int) string { return dir + "/" + valuePrefx + strconv.Itoa(v) }

// meta is the content of meta.json: everything about a secret but its values.
type meta struct {
	Format     int               `json:"format"`
	Name       string            `json:"name"`
	Created    time.Time         `json:"created"`
	Current    int               `json:"current"`
	Tags       map[string]string `json:"tags,omitempty"`
	Provenance map[string]string `json:"provenance,omitempty"` // store.Provenance entries
	Versions   []versionMeta     `json:"versions"`             // newest first
}

type versionMeta struct {
	Version     int       `json:"version"`
	Created     time.Time `json:"created"`
	Kind        string    `json:"kind"` // "text" or "binary"
	ContentType string    `json:"content_type,omitempty"`
	Size        int       `json:"size"`
}

const (
	kindText   = "text"
	kindBinary = "binary"
)

// errNoSecret is readMeta's answer when the secret does not exist.
var errNoSecret = errors.New("no such secret")

// readMeta reads and checks a secret's metadata file; errNoSecret when there is none.
func readMeta(root *os.Root, name string) (*meta, error) {
	b, err := root.ReadFile(metaPath(secretDir(name)))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil, errNoSecret
		}
		return nil, err
	}
	return decodeMeta(name, b)
}

func decodeMeta(name string, b []byte) (*meta, error) {
	var m meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("metadata file of %q is damaged: %w", name, err)
	}
	switch {
	case m.Format > formatVersion:
		return nil, fmt.Errorf("metadata file of %q has format %d; this keyferry reads format %d: upgrade keyferry", name, m.Format, formatVersion)
	case m.Name != name:
		return nil, fmt.Errorf("metadata file of %q names %q: the directory was moved or damaged", name, m.Name)
	case len(m.Versions) == 0 || m.Versions[0].Version != m.Current || m.Current < 1:
		return nil, fmt.Errorf("metadata file of %q is damaged: current version %d is not its newest", name, m.Current)
	}
	for i, v := range m.Versions {
		if (v.Kind != kindText && v.Kind != kindBinary) || v.Size < 0 || (i > 0 && v.Version >= m.Versions[i-1].Version) {
			return nil, fmt.Errorf("metadata file of %q is damaged: bad entry for version %d", name, v.Version)
		}
	}
	return &m, nil
}

func (m *meta) encode() []byte {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		panic("file store: encoding metadata: " + err.Error()) // only maps of strings and plain fields
	}
	return append(b, '\n')
}

func (m *meta) version(v int) (versionMeta, bool) {
	i := slices.IndexFunc(m.Versions, func(x versionMeta) bool { return x.Version == v })
	if i < 0 {
		return versionMeta{}, false
	}
	return m.Versions[i], true
}

// metadata renders m as the store.Metadata of version v (the current one for v == 0).
func (m *meta) metadata(v int) store.Metadata {
	if v == 0 {
		v = m.Current
	}
	vm, _ := m.version(v)
	tags := make(map[string]string, len(m.Tags))
	for k, val := range m.Tags {
		tags[k] = val
	}
	_, prov := store.SplitProvenance(m.Provenance)
	return store.Metadata{
		Name:        m.Name,
		Version:     strconv.Itoa(v),
		Created:     m.Created,
		Updated:     vm.Created,
		ContentType: vm.ContentType,
		Binary:      vm.Kind == kindBinary,
		Tags:        tags,
		Provenance:  prov,
	}
}

// parseVersion reads a version id; 0, false if it is not one of this store's.
func parseVersion(s string) (int, bool) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, false
	}
	return n, true
}
