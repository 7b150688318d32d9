package awssm

import (
	"context"
	"fmt"
	"iter"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyferry/keyferry/core/store"
)

// Version ids (ClientRequestToken) are 32–64 characters.
const (
	minVersionIDLen = 32
	maxVersionIDLen = 64
)

func checkVersionID(id string) *store.Error {
	if len(id) < minVersionIDLen || len(id) > maxVersionIDLen {
		return &store.Error{Kind: store.ErrNotFound,
			Detail: fmt.Sprintf("version id %q is not a Secrets Manager version id (32–64 characters, e.g. a UUID)", id)}
	}
	return nil
}

// Versions yields the secret's versions newest first (deprecated ones included), with their stages.
func (s *Store) Versions(ctx context.Context, name string) iter.Seq2[store.VersionInfo, error] {
	return func(yield func(store.VersionInfo, error) bool) {
		if err := s.checkName("versions", name); err != nil {
			yield(store.VersionInfo{}, err)
			return
		}
		c, err := s.client(ctx)
		if err != nil {
			yield(store.VersionInfo{}, s.fail("versions", name, err))
			return
		}
		var all []types.SecretVersionsListEntry
		in := &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(name), IncludeDeprecated: aws.Bool(true),
			MaxResults: aws.Int32(100)}
		for {
			out, err := c.ListSecretVersionIds(ctx, in)
			if err != nil {
				yield(store.VersionInfo{}, s.fail("versions", name, err))
				return
			}
			all = append(all, out.Versions...)
			if aws.ToString(out.NextToken) == "" {
				break
			}
			in.NextToken = out.NextToken
		}
		for _, v := range sortVersions(all) {
			if !yield(v, nil) {
				return
			}
		}
	}
}

// GetVersion reads one version's value by its id.
func (s *Store) GetVersion(ctx context.Context, name, version string) (store.Secret, error) {
	if err := s.checkName("get-version", name); err != nil {
		return store.Secret{}, err
	}
	if err := checkVersionID(version); err != nil {
		return store.Secret{}, s.fail("get-version", name, err)
	}
	c, err := s.client(ctx)
	if err != nil {
		return store.Secret{}, s.fail("get-version", name, err)
	}
	out, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name), VersionId: aws.String(version)})
	if err != nil {
		return store.Secret{}, s.fail("get-version", name, err)
	}
	v, ok := valueOf(out.SecretString, out.SecretBinary)
	if !ok {
		return store.Secret{}, s.fail("get-version", name, &store.Error{Kind: store.ErrNotFound, Detail: "version " + version + " has no value"})
	}
	return store.Secret{Value: v, Metadata: store.Metadata{Name: name, Version: aws.ToString(out.VersionId),
		Updated: aws.ToTime(out.CreatedDate), Binary: v.IsBinary()}}, nil
}

// PutStaged writes v as version versionID with the given stages (at least one; include AWSCURRENT only to
// make it current). It is idempotent on versionID: writing the same id and value again changes nothing,
// and a different value under an existing id is ErrConflict. Stages the version does not hold after the
// write (an existing version keeps its stages on a repeated write) are moved to it.
func (s *Store) PutStaged(ctx context.Context, name, versionID string, v store.Value, stages []string) (store.VersionInfo, error) {
	const op = "put-staged"
	if err := s.checkValue(op, name, v); err != nil {
		return store.VersionInfo{}, err
	}
	if len(versionID) < minVersionIDLen || len(versionID) > maxVersionIDLen {
		return store.VersionInfo{}, s.fail(op, name, &store.Error{Kind: store.ErrInvalidValue,
			Detail: fmt.Sprintf("version id %q must be 32–64 characters", versionID), Hint: "use a UUID (e.g. a UUIDv5 of the source version)"})
	}
	if len(stages) == 0 {
		return store.VersionInfo{}, s.fail(op, name, &store.Error{Kind: store.ErrInvalidValue,
			Detail: "no stages given: Secrets Manager would make the version current",
			Hint:   "pass AWSPENDING (or a custom stage) for a version that must not become current yet, AWSCURRENT to make it current"})
	}
	c, err := s.client(ctx)
	if err != nil {
		return store.VersionInfo{}, s.fail(op, name, err)
	}
	if _, err := s.describe(ctx, c, name); err != nil {
		return store.VersionInfo{}, s.fail(op, name, err)
	}
	str, bin := valueFields(v)
	out, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(name),
		ClientRequestToken: aws.String(versionID), VersionStages: stages, SecretString: str, SecretBinary: bin})
	if err != nil {
		if errorCode(err) == "ResourceExistsException" {
			e := mapError(err)
			e.Kind, e.Detail = store.ErrConflict, "version "+versionID+" already exists with a different value"
			e.Hint = "versions cannot change: use a new version id for a new value"
			return store.VersionInfo{}, s.fail(op, name, e)
		}
		return store.VersionInfo{}, s.fail(op, name, err)
	}
	held := out.VersionStages
	for _, st := range stages {
		if slices.Contains(held, st) {
			continue
		}
		if err := s.MoveStage(ctx, name, st, versionID); err != nil {
			return store.VersionInfo{}, err
		}
		held = append(held, st)
	}
	return store.VersionInfo{Version: aws.ToString(out.VersionId), Enabled: true, Stages: held}, nil
}

// MoveStage moves stage to versionID from whichever version holds it (UpdateSecretVersionStage). Moving
// AWSCURRENT makes Secrets Manager move AWSPREVIOUS to the version that held it. A stage already on
// versionID is left alone (no call).
func (s *Store) MoveStage(ctx context.Context, name, stage, versionID string) error {
	const op = "move-stage"
	if err := s.checkName(op, name); err != nil {
		return err
	}
	if stage == "" || len(stage) > 256 {
		return s.fail(op, name, &store.Error{Kind: store.ErrInvalidValue, Detail: "a stage is 1–256 characters"})
	}
	if err := checkVersionID(versionID); err != nil {
		return s.fail(op, name, err)
	}
	c, err := s.client(ctx)
	if err != nil {
		return s.fail(op, name, err)
	}
	d, err := s.describe(ctx, c, name)
	if err != nil {
		return s.fail(op, name, err)
	}
	held, ok := d.VersionIdsToStages[versionID]
	if !ok {
		return s.fail(op, name, &store.Error{Kind: store.ErrNotFound, Detail: "the secret has no version " + versionID})
	}
	if slices.Contains(held, stage) {
		return nil
	}
	in := &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String(name), VersionStage: aws.String(stage),
		MoveToVersionId: aws.String(versionID)}
	for id, st := range d.VersionIdsToStages {
		if slices.Contains(st, stage) {
			in.RemoveFromVersionId = aws.String(id)
		}
	}
	if _, err := c.UpdateSecretVersionStage(ctx, in); err != nil {
		if errorCode(err) == "InvalidParameterException" {
			// e.g. "Not a valid version": the version went away since DescribeSecret.
			e := mapError(err)
			e.Kind = store.ErrNotFound
			return s.fail(op, name, e)
		}
		return s.fail(op, name, err)
	}
	return nil
}

// Recover cancels a scheduled deletion (RestoreSecret). Recovering a secret that is not scheduled for
// deletion changes nothing.
func (s *Store) Recover(ctx context.Context, name string) error {
	if err := s.checkName("recover", name); err != nil {
		return err
	}
	c, err := s.client(ctx)
	if err != nil {
		return s.fail("recover", name, err)
	}
	if _, err := c.RestoreSecret(ctx, &secretsmanager.RestoreSecretInput{SecretId: aws.String(name)}); err != nil {
		return s.fail("recover", name, err)
	}
	return nil
}

// Purge deletes a secret scheduled for deletion at once and for good (DeleteSecret with
// ForceDeleteWithoutRecovery). A secret that is not scheduled for deletion is refused with ErrConflict:
// delete it first, or use Delete with Force.
func (s *Store) Purge(ctx context.Context, name string) error {
	if err := s.checkName("purge", name); err != nil {
		return err
	}
	c, err := s.client(ctx)
	if err != nil {
		return s.fail("purge", name, err)
	}
	d, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
	if err != nil {
		return s.fail("purge", name, err)
	}
	if d.DeletedDate == nil {
		return s.fail("purge", name, &store.Error{Kind: store.ErrConflict, Detail: "the secret is not scheduled for deletion",
			Hint: "Delete it first, or use Delete with Force to remove a live secret at once"})
	}
	if _, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(name),
		ForceDeleteWithoutRecovery: aws.Bool(true)}); err != nil {
		return s.fail("purge", name, err)
	}
	return nil
}

// UpdateMetadata makes the secret's tags exactly tags plus prov's entries (aws: system tags are kept),
// calling TagResource and UntagResource only for what changed. The value and its version are untouched.
func (s *Store) UpdateMetadata(ctx context.Context, name string, tags map[string]string, prov *store.Provenance) error {
	const op = "update-metadata"
	if err := s.checkName(op, name); err != nil {
		return err
	}
	if err := s.limits.CheckTags(tags, store.ProvenanceEntries(prov)); err != nil {
		return store.Annotate(err, s.opts.Name, op, name)
	}
	c, err := s.client(ctx)
	if err != nil {
		return s.fail(op, name, err)
	}
	d, err := s.describe(ctx, c, name)
	if err != nil {
		return s.fail(op, name, err)
	}
	set, remove := tagDiff(tagMap(d.Tags), store.MergeTags(tags, prov), true)
	if err := applyTags(ctx, c, name, set, remove); err != nil {
		return s.fail(op, name, err)
	}
	return nil
}

// MarkSynced sets keyferry's Synced mark with one TagResource call (TagResource adds or replaces the given
// keys and leaves the others alone).
func (s *Store) MarkSynced(ctx context.Context, name, synced string) error {
	const op = "mark-synced"
	if err := s.checkName(op, name); err != nil {
		return err
	}
	c, err := s.client(ctx)
	if err != nil {
		return s.fail(op, name, err)
	}
	if err := applyTags(ctx, c, name, map[string]string{store.KeySynced: synced}, nil); err != nil {
		return s.fail(op, name, err)
	}
	return nil
}
