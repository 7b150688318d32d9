// Package awssm is the AWS Secrets Manager store.
//
// # Values
//
// Text values go in SecretString and binary values in SecretBinary, byte for byte: the field a version uses
// is its kind, so nothing is base64-encoded by keyferry and nothing is ever double-encoded. Values are
// 1–65,536 bytes (Secrets Manager holds no empty value).
//
// # Names
//
// ASCII letters, digits and /_+=.@-, 1–512 characters. AWS advises against names ending in "-" followed by
// 6 characters: Secrets Manager appends "-" and 6 random characters to every secret's ARN, so such a name
// can be confused with a partial ARN. keyferry addresses secrets by full name only, so it accepts them
// (common names such as app-config and db-secret have that shape); Options.RefuseARNSuffixNames refuses
// them for accounts whose other tools look secrets up by partial ARN.
//
// # Tags and provenance
//
// User tags and keyferry's provenance record (keys from store.Provenance.Entries) are Secrets Manager tags
// on the secret. Put creates a secret with its tags in the same CreateSecret call; on an existing secret it
// writes the value with PutSecretValue and then changes only the tags that differ (TagResource for new or
// changed keys, UntagResource for provenance keys the new record no longer has). Put never removes other
// tags: tags may drive ABAC, and someone else may own them. UpdateMetadata (store.MetadataUpdater) makes the
// tag set exactly the given tags plus provenance (except aws: system tags), again touching only what changed.
//
// Put generates the new version's id (the ClientRequestToken) before writing, so the SDK's retries of the
// same call are idempotent, and records it as the provenance's ReplicaVersion when the caller left that
// empty: the replica's own tags then tell which version keyferry wrote.
//
// # Reads
//
// The current value is always read with VersionStage AWSCURRENT (moto returns an older version after a stage
// move without it). Get also reads DescribeSecret for tags; Describe and List never call GetSecretValue.
// List uses ListSecrets' server-side filters (name prefix, tag-key, tag-value: prefix matches, so a superset)
// and checks the exact prefix and tags itself, fetching pages lazily.
//
// # Versions and stages
//
// store.Versioned lists ListSecretVersionIds (deprecated versions included), newest first by creation time;
// versions created within the same second (moto keeps whole seconds) keep the service's listing order,
// reversed. store.Staged writes a version with a caller-chosen id and stages (idempotent on the id) and moves
// stages with UpdateSecretVersionStage.
//
// # Deletion
//
// Delete schedules deletion with a recovery window (DeleteOptions.RecoveryWindow, 7–30 days, default 30) or,
// with Force, deletes at once. While deletion is pending the name is blocked: reads and writes fail with
// store.ErrSoftDeleted until Recover (RestoreSecret) or Purge (force delete of a secret already scheduled for
// deletion).
//
// # Errors and retries
//
// Errors map onto store kinds: ResourceNotFoundException → ErrNotFound, ResourceExistsException →
// ErrAlreadyExists, InvalidRequestException about deletion → ErrSoftDeleted, throttles → ErrThrottled,
// access and credential errors → ErrPermissionDenied, network errors → ErrUnavailable. LimitExceededException
// (a hard quota) → ErrThrottled with a detail saying so; the retryer (see Retry) does not retry it.
package awssm
