package awssm

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyferry/keyferry/core/store"
)

// Type is the backend type in keyferry.yaml.
const Type = "aws-secretsmanager"

// Options configure a Secrets Manager store.
type Options struct {
	// Name is the configured store name (the key under `stores:`).
	Name string
	// Client builds the Secrets Manager client. It is called once, on first use, and its client is
	// cached (a failed build is tried again on the next call). Use NewClient for the retry settings.
	Client func(ctx context.Context) (*secretsmanager.Client, error)
	// KMSKeyID encrypts secrets keyferry creates ("" means the account's aws/secretsmanager key).
	KMSKeyID string
	// RefuseARNSuffixNames refuses names ending in "-" + 6 characters (see the package documentation).
	// keyferry always addresses secrets by full name, never by partial ARN, so the default accepts them.
	RefuseARNSuffixNames bool
	// RecoveryWindow is the recovery window of deletes that do not ask for one (0: Secrets Manager's 30 days).
	RecoveryWindow time.Duration
}

// Store is an AWS Secrets Manager store.
type Store struct {
	opts   Options
	limits store.Limits

	mu sync.Mutex
	c  *secretsmanager.Client
}

var (
	_ store.Store           = (*Store)(nil)
	_ store.Versioned       = (*Store)(nil)
	_ store.Staged          = (*Store)(nil)
	_ store.Recoverable     = (*Store)(nil)
	_ store.MetadataUpdater = (*Store)(nil)
)

// Limits from the Secrets Manager API reference (see core/store reference store-limits §1).
const (
	MaxValueBytes  = 65536
	NameMaxLen     = 512
	MaxTags        = 50
	TagKeyMaxLen   = 128
	TagValueMaxLen = 256
)

const nameChars = `A-Za-z0-9/_+=.@-`

var (
	// namePattern is the character rule plus "the 7th character from the end is not '-'".
	namePattern = regexp.MustCompile(`^(?:[` + nameChars + `]{1,6}|[` + nameChars + `]*[A-Za-z0-9/_+=.@][` + nameChars + `]{6})$`)
	// nameCharsOnly is the character rule alone (the default).
	nameCharsOnly = regexp.MustCompile(`^[` + nameChars + `]+$`)
)

const (
	nameRuleChars  = "ASCII letters, digits and /_+=.@- only, 1–512 characters"
	nameRuleSuffix = `, not ending in "-" followed by 6 characters (Secrets Manager appends "-" and 6 random characters to the ARN, so such a name is confused with a partial ARN)`
)

// New returns a Secrets Manager store. No client is built until the first call.
func New(opts Options) (*Store, error) {
	if opts.Name == "" {
		return nil, errors.New("awssm: Options.Name is empty: give the store its configured name")
	}
	if opts.Client == nil {
		return nil, fmt.Errorf("awssm: store %q: Options.Client is nil: give it a client builder", opts.Name)
	}
	l := store.Limits{
		NamePattern: nameCharsOnly, NameRule: nameRuleChars, NameMinLen: 1, NameMaxLen: NameMaxLen,
		MaxValueBytes: MaxValueBytes, Binary: store.BinaryNative,
		MaxTags: MaxTags, TagKeyMaxLen: TagKeyMaxLen, TagValueMaxLen: TagValueMaxLen, ReservedPrefix: []string{"aws:"},
		TagRule: "keys 1–128 characters, values 0–256, case-sensitive, at most 50 per secret including keyferry's provenance, no aws: prefix",
	}
	if opts.RefuseARNSuffixNames {
		l.NamePattern, l.NameRule = namePattern, nameRuleChars+nameRuleSuffix
	}
	return &Store{opts: opts, limits: l}, nil
}

// Name is the configured store name.
func (s *Store) Name() string { return s.opts.Name }

// Type is "aws-secretsmanager".
func (s *Store) Type() string { return Type }

// Limits are Secrets Manager's name, value and tag limits.
func (s *Store) Limits() store.Limits { return s.limits }

func (s *Store) client(ctx context.Context) (*secretsmanager.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c != nil {
		return s.c, nil
	}
	c, err := s.opts.Client(ctx)
	if err == nil && c == nil {
		err = errors.New("the client builder returned no client")
	}
	if err != nil {
		return nil, &store.Error{Kind: store.ErrUnavailable, Detail: "building the Secrets Manager client failed", Err: err,
			Hint: "check the store's AWS configuration (region, credentials, endpoint)"}
	}
	s.c = c
	return c, nil
}

// checkName refuses a bad name before any call, with a specific hint for the ARN-suffix rule.
func (s *Store) checkName(op, name string) error {
	if s.opts.RefuseARNSuffixNames && nameCharsOnly.MatchString(name) && len(name) <= NameMaxLen && !namePattern.MatchString(name) {
		return store.Annotate(&store.Error{Kind: store.ErrInvalidName,
			Detail: fmt.Sprintf("the name ends in %q, a hyphen and 6 characters", name[len(name)-7:]),
			Hint: "Secrets Manager appends \"-\" and 6 random characters to every secret's ARN, so this name is confused " +
				"with a partial ARN and a lookup may hit another secret: rename it (e.g. add a character), or drop " +
				"RefuseARNSuffixNames"}, s.opts.Name, op, name)
	}
	return store.CheckName(s, op, name)
}

// checkPut refuses a bad write before any call.
func (s *Store) checkPut(name string, v store.Value, opts store.PutOptions) error {
	if err := s.checkName("put", name); err != nil {
		return err
	}
	if err := store.CheckPut(s, name, v, opts); err != nil {
		return err
	}
	return s.checkNotEmpty("put", name, v)
}

// checkValue refuses a value the store cannot hold, for writes other than Put.
func (s *Store) checkValue(op, name string, v store.Value) error {
	if err := s.checkName(op, name); err != nil {
		return err
	}
	if err := s.limits.CheckValue(v); err != nil {
		return store.Annotate(err, s.opts.Name, op, name)
	}
	return s.checkNotEmpty(op, name, v)
}

func (s *Store) checkNotEmpty(op, name string, v store.Value) error {
	if v.Len() == 0 {
		return store.Annotate(&store.Error{Kind: store.ErrInvalidValue, Detail: "Secrets Manager holds no empty value",
			Hint: "write at least one byte"}, s.opts.Name, op, name)
	}
	return nil
}

// fail maps an SDK error and names the store, the operation and the secret.
func (s *Store) fail(op, name string, err error) error {
	if err == nil {
		return nil
	}
	var se *store.Error
	if errors.As(err, &se) {
		return store.Annotate(se, s.opts.Name, op, name)
	}
	return store.Annotate(mapError(err), s.opts.Name, op, name)
}

// valueInput sets a value on the SecretString or SecretBinary field.
func valueFields(v store.Value) (str *string, bin []byte) {
	if v.IsBinary() {
		return nil, append([]byte(nil), v.Bytes()...)
	}
	return aws.String(string(v.Bytes())), nil
}

// valueOf reads a value from GetSecretValue's fields.
func valueOf(str *string, bin []byte) (store.Value, bool) {
	switch {
	case bin != nil:
		return store.Binary(bin), true
	case str != nil:
		return store.Text(*str), true
	}
	return store.Value{}, false
}

// currentVersion is the version holding AWSCURRENT.
func currentVersion(stages map[string][]string) string {
	for id, st := range stages {
		for _, s := range st {
			if s == stageCurrent {
				return id
			}
		}
	}
	return ""
}

const (
	stageCurrent  = "AWSCURRENT"
	stagePrevious = "AWSPREVIOUS"
)

func tagMap(tags []types.Tag) map[string]string {
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

// tagList renders a map as SDK tags in key order (stable requests).
func tagList(m map[string]string) []types.Tag {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]types.Tag, 0, len(keys))
	for _, k := range keys {
		out = append(out, types.Tag{Key: aws.String(k), Value: aws.String(m[k])})
	}
	return out
}

// tagDiff says which tags to set and which keys to remove to go from have to want. With exact, every key
// of have not in want is removed (but aws: system tags); otherwise only keyferry's provenance keys are.
func tagDiff(have, want map[string]string, exact bool) (set map[string]string, remove []string) {
	set = map[string]string{}
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			set[k] = v
		}
	}
	for k := range have {
		if _, ok := want[k]; ok || strings.HasPrefix(strings.ToLower(k), "aws:") {
			continue
		}
		if exact || strings.HasPrefix(k, store.ProvenancePrefix) {
			remove = append(remove, k)
		}
	}
	sort.Strings(remove)
	return set, remove
}

// applyTags makes the changes tagDiff found: at most one TagResource and one UntagResource call.
func applyTags(ctx context.Context, c *secretsmanager.Client, name string, set map[string]string, remove []string) error {
	if len(set) > 0 {
		if _, err := c.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: aws.String(name), Tags: tagList(set)}); err != nil {
			return err
		}
	}
	if len(remove) > 0 {
		if _, err := c.UntagResource(ctx, &secretsmanager.UntagResourceInput{SecretId: aws.String(name), TagKeys: remove}); err != nil {
			return err
		}
	}
	return nil
}

// after applies a tag diff to have.
func after(have, set map[string]string, remove []string) map[string]string {
	out := make(map[string]string, len(have)+len(set))
	for k, v := range have {
		out[k] = v
	}
	for _, k := range remove {
		delete(out, k)
	}
	for k, v := range set {
		out[k] = v
	}
	return out
}

// newVersionID returns a random UUID (version 4), the form Secrets Manager uses for version ids.
func newVersionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// withReplicaVersion returns a copy of p recording version as the replica version, unless p is nil or
// already names one.
func withReplicaVersion(p *store.Provenance, version string) *store.Provenance {
	if p == nil || p.ReplicaVersion != "" {
		return p
	}
	c := *p
	c.ReplicaVersion = version
	return &c
}
