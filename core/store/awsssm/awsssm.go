package awsssm

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/keyferry/keyferry/core/store"
)

// Type is the backend type in keyferry.yaml.
const Type = "aws-ssm"

// DefaultKMSKeyID encrypts SecureString parameters when Options.KMSKeyID is empty.
const DefaultKMSKeyID = "alias/aws/ssm"

// Tiers and their value limits.
const (
	TierStandard = "Standard"
	TierAdvanced = "Advanced"

	MaxStandardValueBytes = 4096
	MaxAdvancedValueBytes = 8192
)

// Name and tag limits.
const (
	// NameMaxLen: AWS allows 1,011 characters counting the ARN prefix arn:<partition>:ssm:<region>:<account>:parameter/
	// (45 characters in us-east-2, up to 58 in the longest partition and region names); 950 fits everywhere.
	NameMaxLen = 950
	// MaxDepth is the deepest hierarchy AWS allows (15 levels).
	MaxDepth       = 15
	MaxTags        = 50
	TagKeyMaxLen   = 128
	TagValueMaxLen = 256
)

// Options configure a Parameter Store store.
type Options struct {
	// Name is the configured store name (the key under `stores:`).
	Name string
	// Client builds the SSM client. It is called once, on first use, and its client is cached (a failed
	// build is tried again on the next call). Use NewClient for the retry settings.
	Client func(ctx context.Context) (*ssm.Client, error)
	// KMSKeyID encrypts the SecureString parameters keyferry writes; "" means DefaultKMSKeyID.
	KMSKeyID string
	// Tier is TierStandard (values ≤ 4,096 bytes; the default) or TierAdvanced (≤ 8,192 bytes, extra cost).
	Tier string
}

// Store is an AWS SSM Parameter Store store.
type Store struct {
	opts   Options
	tier   types.ParameterTier
	limits store.Limits

	mu sync.Mutex
	c  *ssm.Client
}

var (
	_ store.Store           = (*Store)(nil)
	_ store.Versioned       = (*Store)(nil)
	_ store.MetadataUpdater = (*Store)(nil)
)

// segment is one level of a name; first is the first level, which must not start with "aws" or "ssm" in
// any case. RE2 has no lookahead, so first spells the exclusion out character by character.
const (
	segment = `[a-zA-Z0-9_.-]+`
	segChar = `[a-zA-Z0-9_.-]`
	first   = `(?:[b-rt-zB-RT-Z0-9_.-]` + segChar + `*` + // not starting with a or s
		`|[aA](?:|[a-vx-zA-VX-Z0-9_.-]` + segChar + `*|[wW](?:|[a-rt-zA-RT-Z0-9_.-]` + segChar + `*))` + // a, aw, not aws
		`|[sS](?:|[a-rt-zA-RT-Z0-9_.-]` + segChar + `*|[sS](?:|[a-ln-zA-LN-Z0-9_.-]` + segChar + `*)))` // s, ss, not ssm
)

var (
	namePattern = regexp.MustCompile(fmt.Sprintf(`^(?:%s|/%s(?:/%s){0,%d})$`, first, first, segment, MaxDepth-1))
	// pathChars is the character set of names, for filter values.
	pathChars = regexp.MustCompile(`^[a-zA-Z0-9_./-]+$`)
	// tagChars is AWS's tag rule: Unicode letters, digits, spaces and _.:/=+-@.
	tagChars = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)
)

const nameRule = `letters, digits and _.- only; "/" separates hierarchy levels and then must also start the name ` +
	`(at most 15 levels); the first level must not start with "aws" or "ssm" in any case; at most 950 characters`

// New returns a Parameter Store store. No client is built until the first call.
func New(opts Options) (*Store, error) {
	if opts.Name == "" {
		return nil, errors.New("awsssm: Options.Name is empty: give the store its configured name")
	}
	if opts.Client == nil {
		return nil, fmt.Errorf("awsssm: store %q: Options.Client is nil: give it a client builder", opts.Name)
	}
	if opts.KMSKeyID == "" {
		opts.KMSKeyID = DefaultKMSKeyID
	}
	s := &Store{opts: opts}
	maxValue := MaxStandardValueBytes
	switch strings.ToLower(opts.Tier) {
	case "", "standard":
		s.tier = types.ParameterTierStandard
	case "advanced":
		s.tier, maxValue = types.ParameterTierAdvanced, MaxAdvancedValueBytes
	default:
		return nil, fmt.Errorf("awsssm: store %q: tier %q: use %q or %q", opts.Name, opts.Tier, TierStandard, TierAdvanced)
	}
	s.limits = store.Limits{
		NamePattern: namePattern, NameRule: nameRule, NameMinLen: 1, NameMaxLen: NameMaxLen,
		MaxValueBytes: maxValue, Binary: store.BinaryUnsupported,
		MaxTags: MaxTags, TagKeyPattern: tagChars, TagValuePattern: tagChars, TagKeyMaxLen: TagKeyMaxLen,
		TagValueMaxLen: TagValueMaxLen, ReservedPrefix: []string{"aws:"},
		TagRule: "keys 1–128 and values 0–256 characters of Unicode letters, digits, spaces and _.:/=+-@, " +
			"at most 50 per parameter including keyferry's provenance, no aws: prefix",
	}
	return s, nil
}

// Name is the configured store name.
func (s *Store) Name() string { return s.opts.Name }

// Type is "aws-ssm".
func (s *Store) Type() string { return Type }

// Limits are Parameter Store's name, value (per the configured tier) and tag limits.
func (s *Store) Limits() store.Limits { return s.limits }

func (s *Store) client(ctx context.Context) (*ssm.Client, error) {
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
		return nil, &store.Error{Kind: store.ErrUnavailable, Detail: "building the SSM client failed", Err: err,
			Hint: "check the store's AWS configuration (region, credentials, endpoint)"}
	}
	s.c = c
	return c, nil
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

// checkPut refuses a bad write before any call.
func (s *Store) checkPut(name string, v store.Value, opts store.PutOptions) error {
	if err := store.CheckPut(s, name, v, opts); err != nil {
		return err
	}
	if v.Len() == 0 {
		return store.Annotate(&store.Error{Kind: store.ErrInvalidValue, Detail: "Parameter Store holds no empty value",
			Hint: "write at least one byte"}, s.opts.Name, "put", name)
	}
	return nil
}

// sameParameter reports whether two names denote one parameter: Parameter Store treats a one-level name
// with and without its leading "/" as the same parameter ("/a" is "a", "/a/b" is not "a/b").
func sameParameter(a, b string) bool { return canonical(a) == canonical(b) }

func canonical(n string) string {
	if rest, ok := strings.CutPrefix(n, "/"); ok && !strings.Contains(rest, "/") {
		return rest
	}
	return n
}

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

// listTags reads a parameter's tags; a missing parameter is InvalidResourceId (ErrNotFound).
func listTags(ctx context.Context, c *ssm.Client, name string) (map[string]string, error) {
	out, err := c.ListTagsForResource(ctx, &ssm.ListTagsForResourceInput{ResourceId: aws.String(name),
		ResourceType: types.ResourceTypeForTaggingParameter})
	if err != nil {
		return nil, err
	}
	return tagMap(out.TagList), nil
}

// applyTags makes the changes tagDiff found: at most one AddTagsToResource and one
// RemoveTagsFromResource call.
func applyTags(ctx context.Context, c *ssm.Client, name string, set map[string]string, remove []string) error {
	if len(set) > 0 {
		if _, err := c.AddTagsToResource(ctx, &ssm.AddTagsToResourceInput{ResourceId: aws.String(name),
			ResourceType: types.ResourceTypeForTaggingParameter, Tags: tagList(set)}); err != nil {
			return err
		}
	}
	if len(remove) > 0 {
		if _, err := c.RemoveTagsFromResource(ctx, &ssm.RemoveTagsFromResourceInput{ResourceId: aws.String(name),
			ResourceType: types.ResourceTypeForTaggingParameter, TagKeys: remove}); err != nil {
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
