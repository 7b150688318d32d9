// Package awsssm is the AWS Systems Manager Parameter Store store.
//
// # Values
//
// keyferry writes every value as a SecureString parameter encrypted with the configured KMS key
// (Options.KMSKeyID, default alias/aws/ssm), in the configured tier: Standard holds values up to 4,096
// and Advanced up to 8,192 (AWS counts characters; keyferry counts bytes, which is never more lenient).
// An existing String or StringList parameter keyferry overwrites becomes a SecureString. Empty values
// are refused: Parameter Store holds none.
//
// Values are text only, and binary values are refused (store.BinaryUnsupported). A base64 convention
// would need a marker that travels with each version, and Parameter Store has no such place: tags belong
// to the parameter, not to a version, so a marker tag would misdescribe the older versions in the
// history; GetParameter returns no per-version field besides the value; and DataType only takes text
// and AMI ids. Rather than guess from the bytes (which would decode text that merely looks like base64),
// the adapter refuses binary before any call.
//
// # Names
//
// Letters, digits and _.-, with "/" separating hierarchy levels; a name with "/" must start with one; at
// most 15 levels; the first level must not start with "aws" or "ssm" in any case (reserved); at most 950
// characters (AWS counts 1,011 including the ARN prefix). A one-level name with and without its leading
// "/" ("/db" and "db") is the same parameter in Parameter Store.
//
// # Tags and provenance
//
// User tags and keyferry's provenance record (keys from store.Provenance.Entries) are the parameter's
// tags. PutParameter refuses Tags together with Overwrite, so Put first reads the tags
// (ListTagsForResource, which also tells whether the parameter exists): a new parameter gets its tags in
// the creating PutParameter call; an existing one is overwritten and then only the tags that differ are
// changed (AddTagsToResource, and RemoveTagsFromResource for provenance keys the new record no longer
// has). Put never removes other tags. UpdateMetadata (store.MetadataUpdater) makes the tag set exactly the
// given tags plus provenance (aws: system tags kept), touching only what changed.
//
// # Reads
//
// Get is GetParameter with decryption plus ListTagsForResource. Describe is DescribeParameters (Name
// Equals) plus ListTagsForResource; List is DescribeParameters with Name BeginsWith and tag:KEY filters,
// paged lazily, plus ListTagsForResource per parameter listed (for the provenance). Neither calls
// GetParameter, GetParameters, GetParametersByPath or GetParameterHistory.
//
// # Versions
//
// Every write is a new numbered version; AWS keeps 100. store.Versioned lists GetParameterHistory (without
// decryption, values dropped) newest first, labels as stages, and reads one version with GetParameter
// "name:version".
//
// # Deletion
//
// DeleteParameter is immediate and final: there is no recovery, so Delete ignores DeleteOptions and the
// store does not implement store.Recoverable.
//
// # Errors and retries
//
// ParameterNotFound, ParameterVersionNotFound and InvalidResourceId → ErrNotFound; ParameterAlreadyExists →
// ErrAlreadyExists; ThrottlingException and TooManyUpdates → ErrThrottled (after the retryer's attempts, see
// Retry); access and credential errors → ErrPermissionDenied; ValidationException → ErrInvalidValue; network
// errors → ErrUnavailable.
package awsssm
