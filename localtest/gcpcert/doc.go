// Package gcpcert is an in-process emulator of Google Cloud Certificate Manager (v1 gRPC API,
// google.cloud.certificatemanager.v1.CertificateManager) for keyferry's local test cloud, limited to the
// self-managed certificate workflow: upload a certificate chain and its private key, read it back, list,
// replace and delete it. It serves on a free 127.0.0.1 port behind the fault layer's gRPC interceptors,
// like the Secret Manager emulator in package gcp, and is meant for the official client:
//
//	s, _ := gcpcert.Start(gcpcert.Options{})
//	defer s.Stop()
//	c, _ := certificatemanager.NewClient(ctx, s.ClientOptions()...)
//
// # What is emulated
//
//   - CreateCertificate with self_managed {pem_certificate, pem_private_key}. The chain must be PEM
//     CERTIFICATE blocks, leaf first, each certificate issued by the next one (text outside the blocks is
//     ignored, as openssl does). The key must be one unencrypted PKCS#8, PKCS#1 or SEC1 PEM key (an
//     "EC PARAMETERS" block before it is skipped), RSA with 2048 to 4096 bits or ECDSA on P-256 or P-384,
//     and it must match the leaf. Anything else fails with INVALID_ARGUMENT and a message naming the
//     problem. Managed and managed-identity certificates fail with UNIMPLEMENTED; a certificate without a
//     type fails with INVALID_ARGUMENT. Ids follow the rule 1 to 63 characters of lowercase letters, digits
//     and hyphens, starting with a letter (INVALID_ARGUMENT otherwise); an existing name gives
//     ALREADY_EXISTS. Labels are checked with the usual GCP label rules (≤ 64; keys start with a lowercase
//     letter; keys and values ≤ 63 lowercase letters, digits, '_' and '-').
//   - Output view (every response, including the operations' responses): name, description, labels,
//     scope, create_time, update_time, pem_certificate (the chain as uploaded, re-encoded: CERTIFICATE
//     blocks only), san_dnsnames (the leaf's DNS SANs), expire_time (the leaf's NotAfter) and an empty
//     self_managed marking the type. The private key is never returned; pem_private_key and the input-only
//     self_managed.pem_certificate stay empty. Tags are input only and dropped.
//   - GetCertificate; DeleteCertificate; ListCertificates sorted by name with page_size (default 100, at
//     most 1000) and a keyset page_token (stable under concurrent creates and deletes). A filter, or an
//     order_by other than name, fails with UNIMPLEMENTED rather than being ignored.
//   - UpdateCertificate with a required update_mask of labels, description and self_managed (the last
//     replaces chain and key, validated as on create, and recomputes san_dnsnames and expire_time).
//     Immutable or unknown paths fail with INVALID_ARGUMENT. update_time is renewed on every update.
//   - Create, Update and Delete return a google.longrunning.Operation that is already done, with
//     OperationMetadata (target, verb, create/end time, api_version v1) and the Certificate (or Empty for
//     Delete) packed in its response, so the client's Wait returns at once. The Operations service is
//     served too (GetOperation, ListOperations per location, DeleteOperation; WaitOperation and
//     CancelOperation return at once since every operation is done), so a client that resumes an
//     operation by name (Client.CreateCertificateOperation(name).Wait) polls it successfully.
//   - Names are projects/{p}/locations/{l}/certificates/{id}; any project and location are accepted.
//     Malformed names fail with INVALID_ARGUMENT, unknown ones with NOT_FOUND.
//
// Server.TLSCertificate hands the stored chain and key to in-process tests, standing in for a load
// balancer that serves the certificate.
//
// # Limits
//
// Not emulated: certificate maps and map entries, DNS authorizations, issuance configs, trust configs,
// managed certificates, the Locations mixin, IAM (gcp.DenyToken can stand in via Options.Interceptors),
// used_by (nothing uses a certificate, so Delete never fails with FAILED_PRECONDITION), the REST
// transport, and persistence (state lives in memory until Stop). Validation errors are returned
// synchronously rather than as failed operations. The requirement that the chain be in issuing order
// and the key-size limits are the emulator's documented choices; the service's exact acceptance rules
// for unusual chains may differ. Operations are kept until deleted.
package gcpcert
