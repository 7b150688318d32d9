// Package vaultkv is the Store adapter for HashiCorp Vault's KV version 2 secrets engine, on the official
// client github.com/hashicorp/vault/api.
//
// # Names
//
// A secret's name is its path below the mount (Options.Mount, default "secret"): segments of ASCII letters,
// digits and "_ . @ = -" separated by "/", no empty segment (so no leading, trailing or doubled "/"), no
// segment made only of dots ("." and ".." would be resolved away), at most 512 characters, case-sensitive.
// "+" and "*" are left out on purpose: they are wildcards in Vault ACL policy paths.
//
// # Values
//
// KV v2 holds a JSON map of fields per version. keyferry writes exactly one of two shapes:
//
//	text:   {"value": "<the text>"}
//	binary: {"value": "<standard base64 of the bytes>", "encoding": "base64"}
//
// and reads them back as text or binary, byte for byte. Any other shape — a secret written by someone else
// with fields of its own, or one of these shapes with extra fields or an encoding other than valid standard
// base64 — reads back as text holding the JSON object of its data (keys sorted, no HTML escaping) with
// ContentType "application/json". Nothing is decoded unless it carries the base64 marker, so text that
// happens to look like base64 stays text. A write replaces the whole data map of the new version: fields
// that another tool kept next to "value" are not carried over (older versions keep them).
// PutOptions.ContentType is not recorded (KV v2 has no place for it).
//
// The largest value is 768 KiB as stored (binary: 576 KiB raw, 768 KiB once base64-encoded). Vault's
// integrated storage refuses entries above 1 MiB (raft max_entry_size); the rest is headroom for the
// version record and its encryption. Because Vault stores the map as JSON, a text value full of characters
// that JSON escapes (control characters, '<', '>', '&', '"', '\') takes more room: a write whose JSON form
// exceeds 960 KiB is refused with ErrTooLarge before any call, whatever its raw size.
//
// # Metadata
//
// User tags and keyferry's provenance record (keyferry-* keys) are the secret's custom_metadata: at most 64
// entries together, keys 1–128 bytes, values 1–512 bytes, printable characters only (Vault's own rules,
// checked before any call). custom_metadata belongs to the secret, not to a version. When tags or a
// provenance record are given, Put sets them with a metadata PATCH (a second call, made after the value is
// written, so a failure leaves the old record, which then no longer matches the current version): the given
// tags are set, other user tags are kept, and keyferry's record is replaced as a whole; when neither is
// given the metadata is left alone. If the provenance record has no ReplicaVersion, Put fills in the
// version it wrote. UpdateMetadata replaces tags and provenance without writing a value (metadata PATCH).
//
// # Versions, deletes, concurrency
//
// Versions are Vault's integers ("1", "2", ...); the store is store.Versioned (the metadata's versions map,
// newest first; GetVersion reads one). PutIf is a check-and-set write: ifVersion "" writes only if the
// secret does not exist (cas=0); a mismatch is ErrConflict.
//
// Delete without Force soft-deletes the current version (KV v2 delete); Get and Describe then fail with
// ErrSoftDeleted, List skips the secret, a Put writes a new version (the name is not blocked), and Recover
// undeletes that version. Purge removes a soft-deleted secret for good (metadata delete: every version).
// Delete with Force does the same at once. DeleteOptions.RecoveryWindow does not apply: a soft-deleted version
// stays recoverable until it is destroyed or pruned by max_versions.
//
// Describe and List read metadata only, never the data endpoint. Vault does not page LIST: List walks the
// metadata tree under the prefix's directory (recursively), keeps the names that start with the prefix, and
// reads each name's metadata lazily, a page (ListOptions.PageSize, default 100) at a time. Tag filters are
// applied client-side.
//
// # Client, retries, errors
//
// The Vault client is built on first use (Options.Client, or NewClient from Options.Config: address, CA,
// namespace, auth method; by default the token comes from VAULT_TOKEN). Retries are the client's own
// (go-retryablehttp): 5xx, connection errors and 429 are retried up to Retry.MaxRetries times, and a 429's
// Retry-After is honoured. Errors map onto the store's kinds: 404 → ErrNotFound (ErrSoftDeleted when the
// metadata says the current version is deleted), 400 check-and-set mismatch → ErrConflict, 429 →
// ErrThrottled (with RetryAfter), 401/403 → ErrPermissionDenied, 5xx and network failures → ErrUnavailable.
// The adapter logs nothing and never puts a value into an error.
package vaultkv
