package awsssm

import (
	"context"
	"fmt"
	"iter"
	"sort"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/keyferry/keyferry/core/store"
)

func version(v int64) string { return strconv.FormatInt(v, 10) }

// Get reads the current value (GetParameter with decryption) and the parameter's tags.
func (s *Store) Get(ctx context.Context, name string) (store.Secret, error) {
	if err := store.CheckName(s, "get", name); err != nil {
		return store.Secret{}, err
	}
	c, err := s.client(ctx)
	if err != nil {
		return store.Secret{}, s.fail("get", name, err)
	}
	out, err := c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
	if err != nil {
		return store.Secret{}, s.fail("get", name, err)
	}
	all, err := listTags(ctx, c, name)
	if err != nil {
		return store.Secret{}, s.fail("get", name, err)
	}
	p := out.Parameter
	tags, prov := store.SplitProvenance(all)
	return store.Secret{Value: store.Text(aws.ToString(p.Value)), Metadata: store.Metadata{Name: name,
		Version: version(p.Version), Updated: aws.ToTime(p.LastModifiedDate), Tags: tags, Provenance: prov}}, nil
}

// describe finds one parameter's metadata with DescribeParameters (Name Equals), never its value.
func describe(ctx context.Context, c *ssm.Client, name string) (*types.ParameterMetadata, error) {
	in := &ssm.DescribeParametersInput{ParameterFilters: []types.ParameterStringFilter{
		{Key: aws.String("Name"), Option: aws.String("Equals"), Values: []string{name}}}}
	for {
		out, err := c.DescribeParameters(ctx, in)
		if err != nil {
			return nil, err
		}
		for i := range out.Parameters {
			if sameParameter(aws.ToString(out.Parameters[i].Name), name) {
				return &out.Parameters[i], nil
			}
		}
		if aws.ToString(out.NextToken) == "" {
			return nil, &store.Error{Kind: store.ErrNotFound, Detail: "no such parameter"}
		}
		in.NextToken = out.NextToken
	}
}

func metadataOf(name string, p *types.ParameterMetadata, all map[string]string) store.Metadata {
	tags, prov := store.SplitProvenance(all)
	return store.Metadata{Name: name, Version: version(p.Version), Updated: aws.ToTime(p.LastModifiedDate),
		Tags: tags, Provenance: prov}
}

// Describe reads the parameter's metadata (DescribeParameters and ListTagsForResource; never the value).
// Created is not known to Parameter Store's metadata and stays zero; Updated is the current version's time.
func (s *Store) Describe(ctx context.Context, name string) (store.Metadata, error) {
	if err := store.CheckName(s, "describe", name); err != nil {
		return store.Metadata{}, err
	}
	c, err := s.client(ctx)
	if err != nil {
		return store.Metadata{}, s.fail("describe", name, err)
	}
	p, err := describe(ctx, c, name)
	if err != nil {
		return store.Metadata{}, s.fail("describe", name, err)
	}
	all, err := listTags(ctx, c, name)
	if err != nil {
		return store.Metadata{}, s.fail("describe", name, err)
	}
	return metadataOf(name, p, all), nil
}

// Put writes v as a new version of a SecureString parameter encrypted with the configured KMS key, in the
// configured tier. ListTagsForResource first tells whether the parameter exists and what its tags are: a
// new parameter is created with its tags in the PutParameter call; an existing one is overwritten (Tags
// cannot go with Overwrite) and then only the tags that differ are changed.
func (s *Store) Put(ctx context.Context, name string, v store.Value, opts store.PutOptions) (store.Metadata, error) {
	if err := s.checkPut(name, v, opts); err != nil {
		return store.Metadata{}, err
	}
	c, err := s.client(ctx)
	if err != nil {
		return store.Metadata{}, s.fail("put", name, err)
	}
	want := store.MergeTags(opts.Tags, opts.Provenance)
	in := &ssm.PutParameterInput{Name: aws.String(name), Value: aws.String(string(v.Bytes())),
		Type: types.ParameterTypeSecureString, KeyId: aws.String(s.opts.KMSKeyID), Tier: s.tier}
	// A second round only follows a lost creation race (someone created the parameter in between).
	for round := 0; ; round++ {
		have, err := listTags(ctx, c, name)
		if errorCode(err) == "InvalidResourceId" {
			create := *in
			create.Overwrite = aws.Bool(false)
			if len(want) > 0 {
				create.Tags = tagList(want)
			}
			out, err := c.PutParameter(ctx, &create)
			if errorCode(err) == "ParameterAlreadyExists" && round == 0 {
				continue
			}
			if err != nil {
				return store.Metadata{}, s.fail("put", name, err)
			}
			tags, _ := store.SplitProvenance(want)
			return store.Metadata{Name: name, Version: version(out.Version), Tags: tags, Provenance: opts.Provenance}, nil
		}
		if err != nil {
			return store.Metadata{}, s.fail("put", name, err)
		}
		in.Overwrite = aws.Bool(true)
		out, err := c.PutParameter(ctx, in)
		if err != nil {
			return store.Metadata{}, s.fail("put", name, err)
		}
		set, remove := tagDiff(have, want, false)
		if err := applyTags(ctx, c, name, set, remove); err != nil {
			e := mapError(err)
			e.Detail = fmt.Sprintf("the value was written as version %d, but updating its tags failed", out.Version)
			e.Hint = "write again (the provenance tags may be stale until then)"
			return store.Metadata{}, s.fail("put", name, e)
		}
		tags, _ := store.SplitProvenance(after(have, set, remove))
		return store.Metadata{Name: name, Version: version(out.Version), Tags: tags, Provenance: opts.Provenance}, nil
	}
}

// DefaultPageSize is the DescribeParameters page size when ListOptions.PageSize is 0 (the API's maximum).
const DefaultPageSize = 50

// listFilters narrows a listing server-side: Name BeginsWith for the prefix and tag:KEY Equals for each
// tag. List checks the exact prefix and tags again, as the service matches a one-level name with and
// without its leading "/".
func listFilters(opts store.ListOptions) (filters []types.ParameterStringFilter, none bool) {
	if opts.Prefix != "" {
		if !pathChars.MatchString(opts.Prefix) {
			return nil, true // no parameter name can start with it
		}
		filters = append(filters, types.ParameterStringFilter{Key: aws.String("Name"), Option: aws.String("BeginsWith"),
			Values: []string{opts.Prefix}})
	}
	keys := make([]string, 0, len(opts.Tags))
	for k := range opts.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if len(k) > TagKeyMaxLen || !tagChars.MatchString(k) {
			continue // left to the client-side check
		}
		f := types.ParameterStringFilter{Key: aws.String("tag:" + k), Option: aws.String("Equals")}
		if v := opts.Tags[k]; v != "" {
			f.Values = []string{v}
		}
		filters = append(filters, f)
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

// List yields the metadata of every parameter matching opts, one DescribeParameters page at a time, with
// each parameter's tags from ListTagsForResource (DescribeParameters returns none, and the provenance
// lives in them). It never reads a value.
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
		in := &ssm.DescribeParametersInput{ParameterFilters: filters, MaxResults: aws.Int32(int32(size))}
		for {
			out, err := c.DescribeParameters(ctx, in)
			if err != nil {
				yield(store.Metadata{}, s.fail("list", "", err))
				return
			}
			for i := range out.Parameters {
				p := &out.Parameters[i]
				name := aws.ToString(p.Name)
				if !strings.HasPrefix(name, opts.Prefix) {
					continue
				}
				all, err := listTags(ctx, c, name)
				if errorCode(err) == "InvalidResourceId" {
					continue // deleted since the page was read
				}
				if err != nil {
					yield(store.Metadata{}, s.fail("list", name, err))
					return
				}
				if !tagsMatch(all, opts.Tags) {
					continue
				}
				if !yield(metadataOf(name, p, all), nil) {
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

// Delete deletes the parameter and all its versions at once: Parameter Store has no recovery, so
// DeleteOptions (Force, RecoveryWindow) change nothing.
func (s *Store) Delete(ctx context.Context, name string, _ store.DeleteOptions) error {
	if err := store.CheckName(s, "delete", name); err != nil {
		return err
	}
	c, err := s.client(ctx)
	if err != nil {
		return s.fail("delete", name, err)
	}
	if _, err := c.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String(name)}); err != nil {
		return s.fail("delete", name, err)
	}
	return nil
}

// Versions yields the parameter's versions newest first (GetParameterHistory without decryption; the
// values it returns are dropped), with their labels as stages.
func (s *Store) Versions(ctx context.Context, name string) iter.Seq2[store.VersionInfo, error] {
	return func(yield func(store.VersionInfo, error) bool) {
		if err := store.CheckName(s, "versions", name); err != nil {
			yield(store.VersionInfo{}, err)
			return
		}
		c, err := s.client(ctx)
		if err != nil {
			yield(store.VersionInfo{}, s.fail("versions", name, err))
			return
		}
		var all []store.VersionInfo
		in := &ssm.GetParameterHistoryInput{Name: aws.String(name), WithDecryption: aws.Bool(false), MaxResults: aws.Int32(50)}
		for {
			out, err := c.GetParameterHistory(ctx, in)
			if err != nil {
				yield(store.VersionInfo{}, s.fail("versions", name, err))
				return
			}
			for _, h := range out.Parameters {
				all = append(all, store.VersionInfo{Version: version(h.Version), Created: aws.ToTime(h.LastModifiedDate),
					Enabled: true, Stages: append([]string(nil), h.Labels...)})
			}
			if aws.ToString(out.NextToken) == "" {
				break
			}
			in.NextToken = out.NextToken
		}
		sort.SliceStable(all, func(i, j int) bool {
			a, _ := strconv.ParseInt(all[i].Version, 10, 64)
			b, _ := strconv.ParseInt(all[j].Version, 10, 64)
			return a > b
		})
		for _, v := range all {
			if !yield(v, nil) {
				return
			}
		}
	}
}

// GetVersion reads one version's value (GetParameter "name:version" with decryption).
func (s *Store) GetVersion(ctx context.Context, name, ver string) (store.Secret, error) {
	if err := store.CheckName(s, "get-version", name); err != nil {
		return store.Secret{}, err
	}
	n, err := strconv.ParseInt(ver, 10, 64)
	if err != nil || n < 1 {
		return store.Secret{}, s.fail("get-version", name, &store.Error{Kind: store.ErrNotFound,
			Detail: fmt.Sprintf("version %q is not a Parameter Store version (a number from 1)", ver)})
	}
	c, err := s.client(ctx)
	if err != nil {
		return store.Secret{}, s.fail("get-version", name, err)
	}
	out, err := c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name + ":" + version(n)), WithDecryption: aws.Bool(true)})
	if err != nil {
		return store.Secret{}, s.fail("get-version", name, err)
	}
	p := out.Parameter
	return store.Secret{Value: store.Text(aws.ToString(p.Value)), Metadata: store.Metadata{Name: name,
		Version: version(p.Version), Updated: aws.ToTime(p.LastModifiedDate)}}, nil
}

// UpdateMetadata makes the parameter's tags exactly tags plus prov's entries (aws: system tags are
// kept), calling AddTagsToResource and RemoveTagsFromResource only for what changed.
func (s *Store) UpdateMetadata(ctx context.Context, name string, tags map[string]string, prov *store.Provenance) error {
	const op = "update-metadata"
	if err := store.CheckName(s, op, name); err != nil {
		return err
	}
	if err := s.limits.CheckTags(tags, store.ProvenanceEntries(prov)); err != nil {
		return store.Annotate(err, s.opts.Name, op, name)
	}
	c, err := s.client(ctx)
	if err != nil {
		return s.fail(op, name, err)
	}
	have, err := listTags(ctx, c, name)
	if err != nil {
		return s.fail(op, name, err)
	}
	set, remove := tagDiff(have, store.MergeTags(tags, prov), true)
	if err := applyTags(ctx, c, name, set, remove); err != nil {
		return s.fail(op, name, err)
	}
	return nil
}
