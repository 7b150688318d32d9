# Starts moto's server with KMS Sign and Verify honouring MessageType=DIGEST, as AWS KMS does.
#
# moto 5.2.1 ignores MessageType: it hashes a DIGEST again and signs H(digest), and its RSA-PSS uses the
# maximum salt length. AWS signs the digest it is given, and RSA-PSS uses a salt as long as the hash.
# This wraps KmsResponse.sign/verify to note a DIGEST request, and the RSA and ECDSA key classes to sign
# and verify such a request's message as prehashed (cryptography's utils.Prehashed), PSS with a salt as
# long as the digest, after checking the digest length as AWS does. RAW messages and everything else
# keep moto's behaviour. The patch is applied when moto first imports moto.kms.responses (moto loads
# backends lazily), so servers that never use KMS start as fast as before.
#
# Usage: python3 -c "$(cat kms_digest.py)" -H 127.0.0.1 -p PORT   (the arguments of moto.server)
import importlib.abc
import importlib.util
import sys
import threading

_TARGET = "moto.kms.responses"
_request = threading.local()  # werkzeug serves each request on its own thread


def _digest_request():
    return getattr(_request, "digest", False)


def _patch(responses):
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ec, padding, utils

    from moto.kms import utils as kms_utils
    from moto.kms.exceptions import ValidationException

    def check_digest(message, hash_alg, signing_algorithm):
        if len(message) != hash_alg.digest_size:
            raise ValidationException(
                f"Digest is invalid length for algorithm {signing_algorithm}."
            )

    def pss_like_kms(pad, hash_alg):
        if isinstance(pad, padding.PSS):
            return padding.PSS(mgf=padding.MGF1(hash_alg), salt_length=hash_alg.digest_size)
        return pad

    # The request handlers: remember whether this request carries a digest.
    def with_message_type(orig):
        def handler(self):
            _request.digest = self._get_param("MessageType") == "DIGEST"
            try:
                return orig(self)
            finally:
                _request.digest = False

        handler.__name__ = orig.__name__
        return handler

    resp = responses.KmsResponse
    resp.sign = with_message_type(resp.sign)
    resp.verify = with_message_type(resp.verify)

    # RSA keys.
    rsa_cls = kms_utils.RSAPrivateKey
    rsa_alg = rsa_cls._RSAPrivateKey__padding_and_hash_algorithm
    rsa_sign, rsa_verify = rsa_cls.sign, rsa_cls.verify

    def rsa_digest(self, message, signing_algorithm):
        kms_utils.validate_signing_algorithm(
            signing_algorithm, kms_utils.SigningAlgorithm.rsa_signing_algorithms()
        )
        pad, hash_alg = rsa_alg(self, signing_algorithm)
        check_digest(message, hash_alg, signing_algorithm)
        return pss_like_kms(pad, hash_alg), utils.Prehashed(hash_alg)

    def rsa_sign_digest(self, message, signing_algorithm):
        if not _digest_request():
            return rsa_sign(self, message, signing_algorithm)
        pad, prehashed = rsa_digest(self, message, signing_algorithm)
        return self.private_key.sign(message, pad, prehashed)

    def rsa_verify_digest(self, message, signature, signing_algorithm):
        if not _digest_request():
            return rsa_verify(self, message, signature, signing_algorithm)
        pad, prehashed = rsa_digest(self, message, signing_algorithm)
        try:
            self.private_key.public_key().verify(signature, message, pad, prehashed)
            return True
        except InvalidSignature:
            return False

    rsa_cls.sign, rsa_cls.verify = rsa_sign_digest, rsa_verify_digest

    # ECDSA keys.
    ec_cls = kms_utils.ECDSAPrivateKey
    ec_alg = ec_cls._ECDSAPrivateKey__hash_algorithm
    ec_sign, ec_verify = ec_cls.sign, ec_cls.verify

    def ec_digest(self, message, signing_algorithm):
        kms_utils.validate_signing_algorithm(signing_algorithm, self.valid_signing_algorithms)
        hash_alg = ec_alg(self, signing_algorithm)
        check_digest(message, hash_alg, signing_algorithm)
        return ec.ECDSA(utils.Prehashed(hash_alg))

    def ec_sign_digest(self, message, signing_algorithm):
        if not _digest_request():
            return ec_sign(self, message, signing_algorithm)
        return self.private_key.sign(message, ec_digest(self, message, signing_algorithm))

    def ec_verify_digest(self, message, signature, signing_algorithm):
        if not _digest_request():
            return ec_verify(self, message, signature, signing_algorithm)
        alg = ec_digest(self, message, signing_algorithm)
        try:
            self.private_key.public_key().verify(signature, message, alg)
            return True
        except InvalidSignature:
            return False

    ec_cls.sign, ec_cls.verify = ec_sign_digest, ec_verify_digest


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Applies _patch right after moto.kms.responses is first executed."""

    def find_spec(self, name, path, target=None):
        if name != _TARGET:
            return None
        sys.meta_path.remove(self)  # find the real module; patch only once
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            _patch(module)

        spec.loader.exec_module = exec_and_patch
        return spec


sys.meta_path.insert(0, _PatchOnImport())

import moto.server  # noqa: E402

moto.server.main(sys.argv[1:])
