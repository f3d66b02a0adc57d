"""Errors of the age-assurance library, each a `CoveyError` with a stable code.

Verifier errors map to 4xx answers; issuer and wallet errors are raised to the
operator or the client that called them.
"""

from __future__ import annotations

from covey.errors import CoveyError


class AgeError(CoveyError):
    """Base class for every age-assurance failure."""

    code = "age_error"
    status = 400


# -- verifier ------------------------------------------------------------------------


class MalformedPresentation(AgeError):
    """The submission is not JSON, or not the shape of an AnonCreds presentation."""

    code = "malformed_presentation"
    status = 400


class NonceUnknown(AgeError):
    """The presentation names a challenge this verifier never issued (or not to you)."""

    code = "nonce_unknown"
    status = 400


class NonceUsed(AgeError):
    """The challenge was already answered once; presentations are single-use."""

    code = "nonce_used"
    status = 409


class NonceExpired(AgeError):
    """The challenge is older than its time-to-live."""

    code = "nonce_expired"
    status = 410


class PredicateMismatch(AgeError):
    """The proof proves something other than exactly the requested predicate."""

    code = "predicate_mismatch"
    status = 400


class IssuerUntrusted(AgeError):
    """The credential definition is not in the trust registry."""

    code = "issuer_untrusted"
    status = 403


class RevocationStale(AgeError):
    """The non-revocation proof is not against the issuer's current status list."""

    code = "revocation_stale"
    status = 409


class ProofInvalid(AgeError):
    """The zero-knowledge proof does not verify.

    A forged proof, a proof for another challenge and a proof made with a revoked
    credential all look the same to the verifier: that is what unlinkability costs.
    """

    code = "proof_invalid"
    status = 400


# -- holder and issuer -----------------------------------------------------------------


class CredentialRevoked(AgeError):
    """The credential's index is revoked in the issuer's current status list."""

    code = "credential_revoked"
    status = 403


class NoMatchingCredential(AgeError):
    """The wallet holds no credential from an issuer the challenge accepts."""

    code = "no_matching_credential"
    status = 404


class PredicateUnsatisfiable(AgeError):
    """The holder's birth date does not satisfy the requested predicate."""

    code = "predicate_unsatisfiable"
    status = 422


class ChallengeRefused(AgeError):
    """The wallet will not answer: the challenge asks more than an age band."""

    code = "challenge_refused"
    status = 400


class WalletCorrupt(AgeError):
    """Stored wallet bytes cannot be read back."""

    code = "wallet_corrupt"
    status = 400


class OfferUnknown(AgeError):
    """A credential request answers an offer this issuer did not make, or reused one."""

    code = "offer_unknown"
    status = 400


class TicketUnknown(AgeError):
    code = "ticket_unknown"
    status = 404


class IssuanceRejected(AgeError):
    """The birth-date check refused to vouch for this holder."""

    code = "issuance_rejected"
    status = 403


class CredentialUnknown(AgeError):
    code = "credential_unknown"
    status = 404

