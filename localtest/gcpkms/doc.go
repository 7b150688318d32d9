// Package gcpkms is an in-process emulator of Google Cloud KMS (v1 gRPC API,
// google.cloud.kms.v1.KeyManagementService) for keyferry's local test cloud, limited to asymmetric
// signing keys. It serves on a free 127.0.0.1 port behind the fault layer's gRPC interceptors, like the
// Secret Manager emulator in package gcp, and is meant for the official client:
//
//	s, _ := gcpkms.Start(gcpkms.Options{})
//	defer s.Stop()
//	c, _ := kms.NewKeyManagementClient(ctx, s.ClientOptions()...)
//
// # What is emulated
//
//   - CreateKeyRing, GetKeyRing, ListKeyRings. Key ring and crypto key ids are 1 to 63 letters, digits,
//     '_' and '-' (INVALID_ARGUMENT otherwise); existing names give ALREADY_EXISTS; any project and
//     location are accepted.
//   - CreateCryptoKey for purpose ASYMMETRIC_SIGN with version_template.algorithm one of
//     EC_SIGN_P256_SHA256, EC_SIGN_P384_SHA384, RSA_SIGN_PKCS1_{2048,3072,4096}_SHA256,
//     RSA_SIGN_PKCS1_4096_SHA512, RSA_SIGN_PSS_{2048,3072,4096}_SHA256 and RSA_SIGN_PSS_4096_SHA512. It
//     creates version 1, ENABLED, at once (unless skip_initial_version_creation). A missing purpose or
//     algorithm, an algorithm of another purpose, a rotation schedule (the service has no automatic
//     rotation for asymmetric keys), a destroy_scheduled_duration outside 24h..120d and bad labels fail
//     with INVALID_ARGUMENT; other purposes, other signing algorithms (RAW_PKCS1, secp256k1, Ed25519,
//     post-quantum), EXTERNAL protection levels, import_only and crypto_key_backend fail with
//     UNIMPLEMENTED. The protection level defaults to SOFTWARE; HSM is accepted and reported, but every
//     key is an ordinary in-memory Go key. destroy_scheduled_duration defaults to 30 days. Asymmetric keys
//     have no primary version, as on the service.
//   - GetCryptoKey, ListCryptoKeys, CreateCryptoKeyVersion (the next number, ENABLED at once — the service
//     goes through PENDING_GENERATION), GetCryptoKeyVersion, ListCryptoKeyVersions (by version number,
//     with total_size). Lists page with page_size (default 100, at most 1000) and keyset page tokens; a
//     filter or order_by fails with UNIMPLEMENTED rather than being ignored.
//   - GetPublicKey: the PKIX PEM, algorithm, pem_crc32c (CRC32C of the PEM), name and protection level;
//     with public_key_format PEM or DER also public_key (the data in that format with its CRC32C).
//   - AsymmetricSign of a digest: the digest must be of the version's hash (SHA-256, SHA-384 or SHA-512)
//     and of its length, otherwise INVALID_ARGUMENT; a digest_crc32c that does not match fails with
//     INVALID_ARGUMENT, and verified_digest_crc32c reports that it was checked. ECDSA signatures are ASN.1
//     DER (as Cloud KMS returns them), RSA PKCS #1 v1.5 or PSS with the salt length equal to the digest
//     length. The response carries signature_crc32c, name and protection level. Signing data instead of
//     a digest (only for algorithms that do not pre-hash) fails with INVALID_ARGUMENT.
//   - Malformed names fail with INVALID_ARGUMENT, unknown key rings, keys and versions with NOT_FOUND.
//
// Private keys never leave the emulator: no call or method returns them.
//
// # Limits
//
// Not emulated: symmetric, MAC, decryption and KEM keys (and Encrypt, Decrypt, MacSign, ...), version
// state changes (UpdateCryptoKeyVersion, Destroy/Restore; every version stays ENABLED), UpdateCryptoKey,
// import jobs, EKM, Autokey, attestations, the Locations and IAM mixins (gcp.DenyToken can stand in via
// Options.Interceptors), request-data integrity for anything but digest_crc32c, the REST transport and
// persistence (keys live in memory until Stop). Key generation is synchronous, so creating an RSA 4096
// key takes as long as Go needs to generate one.
package gcpkms
