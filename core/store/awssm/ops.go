package awssm

import (
	"context"
	"fmt"
	"iter"
	"math"
	"regexp"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyferry/keyferry/core/store"
)

// describe reads a secret's metadata; a secret scheduled for deletion is ErrSoftDeleted.
func (s *Store) describe(ctx context.Context, c *secretsmanager.Client, name string) (*secretsmanager.DescribeSecretOutput, error) {
	d, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
	if err != nil {
		return nil, mapError(err)
	}
	if d.DeletedDate != nil {
		return d, softDeleted(d.DeletedDate)
	}
	return d, nil
}

func describedMetadata(name string, d *secretsmanager.DescribeSecretOutput) store.Metadata {
	tags, prov := store.SplitProvenance(tagMap(d.Tags))
	return store.Metadata{
		Name:       name,
		Version:    currentVersion(d.VersionIdsToStages),
		Created:    aws.ToTime(d.CreatedDate),
		Updated:    aws.ToTime(d.LastChangedDate),
		Tags:       tags,
		Provenance: prov,
	}
}

// Get reads the current value (VersionStage AWSCURRENT) and the secret's metadata.
func (s *Store) Get(ctx context.Context, name string) (store.Secret, error) {
	if err := s.checkName("get", name); err != nil {
		return store.Secret{}, err
	}
	c, err := s.client(ctx)
	if err != nil {
		return store.Secret{}, s.fail("get", name, err)
	}
	d, err := s.describe(ctx, c, name)
	if err != nil {
		return store.Secret{}, s.fail("get", name, err)
	}
	out, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name), VersionStage: aws.String(stageCurrent)})
	if err != nil {
		return store.Secret{}, s.fail("get", name, err)
	}
	v, ok := valueOf(out.SecretString, out.SecretBinary)
	if !ok {
		return store.Secret{}, s.fail("get", name, &store.Error{Kind: store.ErrNotFound, Detail: "the secret has no current value"})
	}
	md := describedMetadata(name, d)
	md.Version = aws.ToString(out.VersionId)
	md.Updated = aws.ToTime(out.CreatedDate)
	md.Binary = v.IsBinary()
	return store.Secret{Value: v, Metadata: md}, nil
}

// GetValue reads the current value and its version with one GetSecretValue call (no tags: see Get).
func (s *Store) GetValue(ctx context.Context, name string) (store.Value, string, error) {
	if err := s.checkName("get", name); err != nil {
		return store.Value{}, "", err
	}
	c, err := s.client(ctx)
	if err != nil {
		return store.Value{}, "", s.fail("get", name, err)
	}
	out, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name), VersionStage: aws.String(stageCurrent)})
	if err != nil {
		return store.Value{}, "", s.fail("get", name, err)
	}
	v, ok := valueOf(out.SecretString, out.SecretBinary)
	if !ok {
		return store.Value{}, "", s.fail("get", name, &store.Error{Kind: store.ErrNotFound, Detail: "the secret has no current value"})
	}
	return v, aws.ToString(out.VersionId), nil
}

// Describe reads the secret's metadata (DescribeSecret only; never the value). Updated is the secret's last
// change of any kind (LastChangedDate); Binary is unknown without reading the value and left false.
func (s *Store) Describe(ctx context.Context, name string) (store.Metadata, error) {
	if err := s.checkName("describe", name); err != nil {
		return store.Metadata{}, err
	}
	c, err := s.client(ctx)
	if err != nil {
		return store.Metadata{}, s.fail("describe", name, err)
	}
	d, err := s.describe(ctx, c, name)
	if err != nil {
		return store.Metadata{}, s.fail("describe", name, err)
	}
	return describedMetadata(name, d), nil
}

// Put writes v as the new current version: CreateSecret (with the tags) when the secret is absent, else
// PutSecretValue and then only the tag changes needed. A DescribeSecret first finds the secret's state and
// tags, so a write never lands in a secret scheduled for deletion.
func (s *Store) Put(ctx context.Context, name string, v store.Value, opts store.PutOptions) (store.Metadata, error) {
	if err := s.checkPut(name, v, opts); err != nil {
		return store.Metadata{}, err
	}
	c, err := s.client(ctx)
	if err != nil {
		return store.Metadata{}, s.fail("put", name, err)
	}
	version := newVersionID()
	prov := withReplicaVersion(opts.Provenance, version)
	want := store.MergeTags(opts.Tags, prov)
	str, bin := valueFields(v)
	// A second round only follows a lost creation race (someone created the secret in between).
	for round := 0; ; round++ {
		d, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
		if errorCode(err) == "ResourceNotFoundException" {
			in := &secretsmanager.CreateSecretInput{Name: aws.String(name), ClientRequestToken: aws.String(version),
				SecretString: str, SecretBinary: bin}
			if len(want) > 0 {
				in.Tags = tagList(want)
			}
			if s.opts.KMSKeyID != "" {
				in.KmsKeyId = aws.String(s.opts.KMSKeyID)
			}
			out, err := c.CreateSecret(ctx, in)
			if errorCode(err) == "ResourceExistsException" && round == 0 {
				continue // created (or, on moto, scheduled for deletion) since DescribeSecret: look again
			}
			if err != nil {
				return store.Metadata{}, s.fail("put", name, err)
			}
			tags, _ := store.SplitProvenance(want)
			return store.Metadata{Name: name, Version: aws.ToString(out.VersionId), Binary: v.IsBinary(),
				Tags: tags, Provenance: prov}, nil
		}
		if err != nil {
			return store.Metadata{}, s.fail("put", name, err)
		}
		if d.DeletedDate != nil {
			return store.Metadata{}, s.fail("put", name, softDeleted(d.DeletedDate))
		}
		out, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(name),
			ClientRequestToken: aws.String(version), SecretString: str, SecretBinary: bin})
		if err != nil {
			return store.Metadata{}, s.fail("put", name, err)
		}
		have := tagMap(d.Tags)
		set, remove := tagDiff(have, want, false)
		if err := applyTags(ctx, c, name, set, remove); err != nil {
			e := mapError(err)
			e.Detail = fmt.Sprintf("the value was written as version %s, but updating its tags failed", aws.ToString(out.VersionId))
			e.Hint = "write again (the provenance tags may be stale until then)"
			return store.Metadata{}, s.fail("put", name, e)
		}
		tags, _ := store.SplitProvenance(after(have, set, remove))
		return store.Metadata{Name: name, Version: aws.ToString(out.VersionId), Created: aws.ToTime(d.CreatedDate),
			Binary: v.IsBinary(), Tags: tags, Provenance: prov}, nil
	}
}

// DefaultPageSize is the ListSecrets page size when ListOptions.PageSize is 0 (the API's maximum).
const DefaultPageSize = 100

// filterValue is the pattern ListSecrets accepts for a filter value.
var filterValue = regexp.MustCompile(`^[a-zA-Z0-9 :_@/+=.\-]{1,512}$`)

// listFilters narrows a listing server-side. Every filter is a prefix match and filters are ANDed while
// values within one are ORed, so the result is a superset of what opts asks for; List checks exactly.
func listFilters(opts store.ListOptions) (filters []types.Filter, none bool) {
	if opts.Prefix != "" {
		if !nameCharsOnly.MatchString(opts.Prefix) {
			return nil, true // no secret name can start with it
		}
		filters = append(filters, types.Filter{Key: types.FilterNameStringTypeName, Values: []string{opts.Prefix}})
	}
	var keys, values []string
	for k, v := range opts.Tags {
		if filterValue.MatchString(k) && len(keys) < 10 {
			keys = append(keys, k)
		}
		if filterValue.MatchString(v) && len(values) < 10 {
			values = append(values, v)
		}
	}
	sort.Strings(keys)
	sort.Strings(values)
	if len(keys) > 0 {
		filters = append(filters, types.Filter{Key: types.FilterNameStringTypeTagKey, Values: keys})
	}
	if len(values) > 0 {
		filters = append(filters, types.Filter{Key: types.FilterNameStringTypeTagValue, Values: values})
	}
	return filters, false
}

func tagsMatch(have, want map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}

// List yields the metadata of every secret matching opts (secrets scheduled for deletion excluded), one
// ListSecrets page at a time. It never reads a value.
func (s *Store) List(ctx context.Context, opts store.ListOptions) iter.Seq2[store.Metadata, error] {
	return func(yield func(store.Metadata, error) bool) {
		filters, none := listFilters(opts)
		if none {
			return
		}
		c, err := s.client(ctx)
		if err != nil {
			yield(store.Metadata{}, s.fail("list", "", err))
			return
		}
		size := opts.PageSize
		if size <= 0 || size > DefaultPageSize {
			size = DefaultPageSize
		}
		in := &secretsmanager.ListSecretsInput{Filters: filters, MaxResults: aws.Int32(int32(size))}
		for {
			out, err := c.ListSecrets(ctx, in)
			if err != nil {
				yield(store.Metadata{}, s.fail("list", "", err))
				return
			}
			for _, e := range out.SecretList {
				name := aws.ToString(e.Name)
				all := tagMap(e.Tags)
				if e.DeletedDate != nil || !strings.HasPrefix(name, opts.Prefix) || !tagsMatch(all, opts.Tags) {
					continue
				}
				tags, prov := store.SplitProvenance(all)
				md := store.Metadata{Name: name, Version: currentVersion(e.SecretVersionsToStages),
					Created: aws.ToTime(e.CreatedDate), Updated: aws.ToTime(e.LastChangedDate), Tags: tags, Provenance: prov}
				if !yield(md, nil) {
					return
				}
			}
			if aws.ToString(out.NextToken) == "" {
				return
			}
			in.NextToken = out.NextToken
		}
	}
}

// Recovery window bounds of DeleteSecret.
const (
	MinRecoveryDays = 7
	MaxRecoveryDays = 30
)

// Delete schedules the secret's deletion with opts.RecoveryWindow (whole days, rounded up; 0 means the
// store's Options.RecoveryWindow, else Secrets Manager's default of 30), or deletes it at once with opts.Force. A secret already scheduled for
// deletion is ErrSoftDeleted unless Force is set (which purges it).
func (s *Store) Delete(ctx context.Context, name string, opts store.DeleteOptions) error {
	if err := s.checkName("delete", name); err != nil {
		return err
	}
	in := &secretsmanager.DeleteSecretInput{SecretId: aws.String(name)}
	if opts.RecoveryWindow == 0 {
		opts.RecoveryWindow = s.opts.RecoveryWindow
	}
	switch {
	case opts.Force:
		in.ForceDeleteWithoutRecovery = aws.Bool(true)
	case opts.RecoveryWindow > 0:
		days := int64(math.Ceil(opts.RecoveryWindow.Hours() / 24))
		if days < MinRecoveryDays || days > MaxRecoveryDays {
			return s.fail("delete", name, &store.Error{Kind: store.ErrInvalidValue,
				Detail: fmt.Sprintf("recovery window %s is %d days; Secrets Manager allows %d–%d", opts.RecoveryWindow, days, MinRecoveryDays, MaxRecoveryDays),
				Hint:   "choose a window of 7 to 30 days, or delete with Force"})
		}
		in.RecoveryWindowInDays = aws.Int64(days)
	}
	c, err := s.client(ctx)
	if err != nil {
		return s.fail("delete", name, err)
	}
	if opts.Force {
		// A forced delete of a missing secret succeeds on AWS and moto alike; look first, so a missing
		// secret is ErrNotFound here as for every other delete.
		if _, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)}); err != nil {
			return s.fail("delete", name, err)
		}
	}
	if _, err := c.DeleteSecret(ctx, in); err != nil {
		return s.fail("delete", name, err)
	}
	return nil
}

// sortVersions orders versions newest first by creation time; ties (moto keeps whole seconds) keep the
// listing's order reversed, which on moto is creation order.
func sortVersions(vs []types.SecretVersionsListEntry) []store.VersionInfo {
	type item struct {
		i int
		v types.SecretVersionsListEntry
	}
	items := make([]item, len(vs))
	for i, v := range vs {
		items[i] = item{i, v}
	}
	sort.SliceStable(items, func(a, b int) bool {
		ta, tb := aws.ToTime(items[a].v.CreatedDate), aws.ToTime(items[b].v.CreatedDate)
		if !ta.Equal(tb) {
			return ta.After(tb)
		}
		return items[a].i > items[b].i
	})
	out := make([]store.VersionInfo, len(items))
	for i, it := range items {
		out[i] = store.VersionInfo{Version: aws.ToString(it.v.VersionId), Created: aws.ToTime(it.v.CreatedDate),
			Enabled: true, Stages: append([]string(nil), it.v.VersionStages...)}
	}
	return out
}
