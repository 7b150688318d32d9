// Package rotate changes secrets on schedules, in two phases across every store that holds them: the new
// value lands everywhere as pending, an optional test verifies it, and only then is it promoted to current
// everywhere. Readers of "current" never see a value that is not yet everywhere.
//
// # Where a rotation lands
//
// A policy names a primary store. The secret's replicas are what the replication rules keep of it
// (replicate.Engine.Replicas), followed transitively, so a chain A→B→C rotates B and C too; every replica
// is written with provenance naming the primary's NEW current version as its origin, so the replication
// engine plans every replica as unchanged afterwards and writes nothing.
//
// # The pending value: stages and siblings
//
// In a store with version stages (store.Staged: AWS Secrets Manager) the pending value is a version of the
// secret itself, staged AWSPENDING only; its version id (the ClientRequestToken) is the rotation's pending
// version id, derived deterministically from the lease (a UUID-shaped SHA-256 of the first lease id), or
// the token Secrets Manager chose when it drives the rotation (Step). Writing it again is idempotent.
// Promotion moves AWSCURRENT onto it, which makes Secrets Manager move AWSPREVIOUS onto the old version;
// AWSPENDING stays on the new current version, which is how Secrets Manager itself leaves a finished
// rotation. A rollback moves AWSPENDING back onto the current version (the Staged interface cannot remove
// a stage, and a stage on the current version is Secrets Manager's "no rotation in progress"), so the
// abandoned version keeps no stage at all.
//
// In every other store (Key Vault, Secret Manager, Vault, SSM, the file store) the pending value is written
// to a SIBLING secret named
//
//	<name> + PendingSuffix            e.g. "prod/db--keyferry-pending"
//
// mapped through the store's name rules (characters the store cannot hold become "-"). The sibling carries
// provenance naming the primary secret as its origin and the pending version id as its version. Readers
// should keep reading the secret's current value as always: the sibling exists only while a rotation is in
// flight (it is deleted once every store is promoted, or when the rotation rolls back), and nothing but the
// rotation itself (and a test hook) should read it. The replication engine never selects siblings
// (store.PendingSuffix) and never propagates the state tags (store.StatePrefix); Due and Rotate ignore
// such names.
//
// # State in the primary's metadata
//
// Everything the engine knows between runs is kept in two entries of the primary's own metadata (AWS tags,
// Key Vault tags, GCP labels, Vault custom metadata, the file store's tags), so timers in every cloud agree
// without a database:
//
//	keyferry_rotated    the time of the last completed rotation (RFC3339)
//	keyferry_rotation   the lease: "<lease id> <expiry RFC3339> <phase> <pending version id>"
//
// The phase is "pending" (landing, testing: a failure rolls back), "promoting" (the decision to promote
// is durable: a failure or crash rolls forward) or "done". The keys use "_" rather than keyferry's reserved
// "keyferry-" prefix because core/store accepts "keyferry-*" keys only as fields of store.Provenance
// (which has none for rotation), refuses them as tags (store.Limits.CheckTags) and strips them when
// reading (store.SplitProvenance); they are ordinary tags to the stores, so a replication rule that
// propagates tags should exclude them. Stores whose tag values cannot hold those forms (GCP labels:
// lower-case letters, digits, "_" and "-", 63 characters) get a compact form instead:
//
//	keyferry_rotated    20260102t150405z
//	keyferry_rotation   <lease id>_<expiry 20260102t150405z>_<phase>_<seed>
//
// where the pending version id is derived from the seed (the first lease id of the rotation). Both forms
// are read everywhere. Fields are separated by spaces, not "|", because AWS tag values allow only
// letters, digits, spaces and _.:/=+-@.
//
// # Due-ness
//
// A secret is due when last + Every ≤ now, or when the cron schedule's next activation after last is ≤ now
// (or, with MaxAge, last + MaxAge ≤ now), where last is keyferry_rotated or, when missing, the current
// version's Updated (else Created) time. A rotation records the time it completed, not last + Every, so a
// timer missed for a long time catches up with ONE rotation. A secret whose lease expired before the
// rotation completed is due too (the next run finishes or undoes it).
//
// # The lease
//
// A run acquires the lease by writing keyferry_rotation, waiting Options.LeaseSettle, and reading it back:
// only the run that reads its own id back proceeds. A live lease held by another run is refused with
// "a previous rotation isn't complete (lease held until <t>)". The stores offer no compare-and-swap on
// metadata, so two runs that both look before either writes and whose write lags the other's read-back by
// more than LeaseSettle could both proceed; every phase change re-checks the lease, so the later one stops
// at its next step. An expired lease is taken over and recovered by its phase: "pending" is rolled back
// (pending values discarded everywhere) and the secret rotated afresh under a new pending version id;
// "promoting" is rolled forward with the value the primary holds (promoted) or its pending value — no value
// is generated for it, so one rotation never generates twice and never promotes twice. A run that fails
// and cannot undo what it did marks its lease expired, so the next run recovers at once. Release removes
// the key and sets keyferry_rotated in one metadata write.
//
// # Many secrets at once, and throttling
//
// RotateDue rotates up to Options.Concurrency secrets at once (DefaultConcurrency): a rotation mostly waits
// (the lease settle, the stores' answers), so several in flight keep the stores' quotas busy. When a store
// still throttles a step after its own retries, the step — planning, landing the pending value in one
// store, promoting one replica, deleting one sibling, each idempotent — waits the time the store asked for
// (plus jitter, so throttled rotations spread out) and runs again, until the lease is within a minute of
// expiring; only then does the rotation fail (and roll back or forward as above).
//
// # Promotion and the primary's change event
//
// Promoting the primary makes its store announce a change, and a replication run may copy the new value
// to the replicas while the rotation promotes them. A replica that already holds the new version with
// provenance is left as it is (a Secrets Manager replica then gets AWSPENDING moved off the unpromoted
// pending version); where the store offers compare-and-swap (Vault, the file store) the promotion writes
// only over the version it looked at, so the two never both write. Elsewhere both may write the same value
// (one version more) — the replication engine would have to leave a secret with a promoting lease alone.
//
// # Secrets Manager's rotation protocol
//
// Step implements the four steps Secrets Manager sends a rotation function — createSecret, setSecret,
// testSecret, finishSecret — with the step's ClientRequestToken as the lease id and the pending version id,
// so Secrets Manager's own rotation schedule drives keyferry and every step is idempotent.
//
// # Limitations
//
//   - Replicas are written whatever they hold: a foreign write in a replica is overwritten by the
//     promotion (the old credential is about to stop working), not handled by the rule's on_conflict.
//   - Policy.Grace is not acted on: the stores keep previous versions (AWSPREVIOUS in Secrets Manager).
//   - While a replica in Secrets Manager is promoted, AWSCURRENT moves before its provenance is updated;
//     a replication run in between sees a foreign write (an alert under on_conflict: alert) until the
//     rotation, or its recovery, records the provenance.
//   - A secret that holds neither keyferry_rotated nor times (a store that reports none) is due at once.
//
// # Values
//
// A value never appears in logs, errors, audit records or results: store.Value prints redacted, and errors
// from hooks are scrubbed of the value before they leave the engine.
package rotate
