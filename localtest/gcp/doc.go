// Package gcp runs the local GCP side of keyferry's test cloud on 127.0.0.1: the Secret Manager emulator
// in-process (github.com/blackwell-systems/gcp-secret-manager-emulator, behind the fault layer's gRPC
// interceptors) and the gcloud Pub/Sub emulator as a child process.
//
// # Secret Manager
//
// StartSecretManager serves the Secret Manager v1 gRPC API on a free 127.0.0.1 port, optionally with the
// REST gateway (for Terraform). The emulator is embedded behind a thin front server that forwards every
// call to it and adds what the adapter relies on and the emulator (v1.7.1) lacks or gets wrong:
//
//   - etags: the emulator derives a secret's etag from its name, creation time and next version number,
//     so two metadata updates in a row yield the same etag and a stale etag is accepted. The front server
//     keeps its own quoted etag per secret ("…", as the service returns them), renewed on every create and
//     update (no-op updates included) and not on AddSecretVersion, as the service documents. A mismatch on
//     UpdateSecret, DeleteSecret, Enable/Disable/DestroySecretVersion fails with FAILED_PRECONDITION, as the
//     service does (the emulator says ABORTED).
//   - topics and rotation: the emulator drops Secret.topics and Secret.rotation; the front server keeps and
//     returns them (≤ 10 topics named projects/*/topics/*; rotation needs topics). Nothing is published:
//     an interceptor passed in SecretManagerOptions.Interceptors can do that from ChangeFrom.
//   - "latest": the service resolves versions/latest to the most recently created version whatever its
//     state (a disabled newest version makes AccessSecretVersion(latest) fail with FAILED_PRECONDITION); the
//     emulator resolves it to the newest enabled one. The front server follows the service.
//   - ListSecrets: the emulator sorts by creation time (unstable between equal times, so pages could skip or
//     repeat entries), understands only a single "name:" (prefix) or "labels.k=v" expression and silently
//     ignores anything else. The front server sorts by name as the service does, pages with a keyset token,
//     and evaluates conjunctions (AND) of name:VALUE (substring, * wildcard), labels.KEY=VALUE,
//     labels.KEY:VALUE and labels.KEY:*; values may be quoted. Other filters fail with INVALID_ARGUMENT
//     instead of matching everything.
//   - validation: secret ids ([A-Za-z0-9_-]{1,255}), labels (≤ 64, key and value rules, ≤ 128 bytes),
//     annotations (key rule, < 16 KiB in total), update masks (unknown paths and the immutable replication
//     refused), payloads (≤ 65,536 bytes) and user-managed replication (at least one location) are checked
//     the way the service checks them; the emulator accepts anything.
//   - AccessSecretVersion always returns the payload's CRC32C (the emulator returns 0 when the writer sent
//     none), so clients can verify what they read.
//
// Not emulated: expiration (expire_time/ttl are refused with UNIMPLEMENTED), delayed destroy
// (version_destroy_ttl is ignored), CMEK, regional endpoints, IAM (the emulator's IAM mode needs its IAM
// emulator; DenyToken stands in for refused credentials), notifications (see Interceptors).
//
// # Pub/Sub
//
// StartPubSub runs the gcloud Pub/Sub emulator's launcher script, which execs java, so the process it
// holds is the JVM itself; it runs in its own process group and Stop kills the group and waits.
package gcp
