// Package file is keyferry's embedded default store: secrets kept in a local directory.
//
// # Names
//
// A secret name is one or more segments separated by "/". A segment is 1–255 characters from
// [A-Za-z0-9_.+=@-] and is neither "." nor ".."; a name has no leading or trailing "/" and no empty
// segment, and is at most 512 characters long. Names are case-sensitive. Every name is checked against
// this rule before any file is touched, and all file access goes through an [os.Root] opened on the
// store's directory, so no name (and no symbolic link planted inside the directory) can reach a file
// outside it.
//
// # Layout
//
// Under Options.Dir (created 0700; an existing directory that group or others can open is refused):
//
//	secrets/<segment>/.../<segment>/~s/meta.json   metadata: versions, kinds, tags, provenance
//	secrets/<segment>/.../<segment>/~s/v<N>        the exact bytes of version N
//	secrets/<segment>/.../<segment>/~s/lock        the per-secret lock (flock)
//
// "~" cannot occur in a segment, so the "~s" directory of secret "a/b" can never be confused with a
// secret named "a/b/…". Directories are 0700 and files 0600.
//
// # Values, versions and metadata
//
// Values are stored byte for byte, text and binary alike (binary is native: nothing is encoded). Each
// write adds a version numbered 1, 2, 3, … ; the metadata file records, per version, its creation time,
// its kind (text or binary), its content type and its size, so that Describe and List answer from the
// metadata file alone and never open a value file. Options.MaxVersions bounds how many versions are
// kept (0 keeps all). Tags and keyferry's provenance record are kept per secret in the metadata file.
// Tags belong to the secret: a Put adds or changes the tags it is given and keeps the others (only
// UpdateMetadata removes tags). The provenance record always becomes opts.Provenance, since it describes
// the value just written (nil clears it).
//
// Delete removes the secret and all its versions at once; there is no recovery (the store is not
// Recoverable) and the name can be written again immediately, starting over at version 1.
//
// # Crash safety
//
// Every file is written to a temporary file ("~tmp-…") in the same directory, synced, renamed over its
// final name, and the directory is synced. A value file is written before the metadata file that refers
// to it, and a secret exists exactly when its metadata file does, so a crash at any point leaves either
// the old or the new state, never a torn value or metadata file. Files a crash leaves behind (temporary
// files, a value file no metadata refers to) are ignored by readers and removed by the next write to
// that secret.
//
// # Concurrency
//
// Writers of the same secret, in one process or in several sharing the directory, are serialised by an
// exclusive flock on the secret's lock file (waiting honours the context). Readers take no lock: they see
// the metadata file as it was before or after a write, and the files it refers to. PutIf compares the
// current version under that lock ([store.CompareAndSwapper]); a mismatch is a store.ErrConflict.
package file
