"""Zero-knowledge age assurance over AnonCreds: prove "16+" or "under 16", nothing more.

An `Issuer` signs a birth date after a `BirthDateCheck`; the holder's `Wallet` answers
a `Verifier`'s single-use challenge with a predicate proof; the verifier learns the
band, its expiry and the issuer (`VerifiedAge`).
"""

from covey.age.bands import (
    BIRTHDATE_ATTRIBUTE,
    DEFAULT_BAND_VALIDITY,
    DEFAULT_THRESHOLD_YEARS,
    AgeBand,
    Predicate,
    band_expires_at,
    band_predicate,
    cutoff_dateint,
    from_dateint,
    to_dateint,
    years_before,
)
from covey.age.challenge import AgeChallenge
from covey.age.checks import (
    Approved,
    BirthDateCheck,
    CheckOutcome,
    ManualApproval,
    Pending,
    Rejected,
)
from covey.age.errors import (
    AgeError,
    CredentialRevoked,
    CredentialUnknown,
    IssuanceRejected,
    IssuerUntrusted,
    MalformedPresentation,
    NoMatchingCredential,
    NonceExpired,
    NonceUnknown,
    NonceUsed,
    OfferUnknown,
    PredicateMismatch,
    PredicateUnsatisfiable,
    ProofInvalid,
    RegistryFull,
    RevocationStale,
    TicketUnknown,
    WalletCorrupt,
)
from covey.age.issuer import IssuanceResult, Issuer, PendingTicket
from covey.age.registry import Revocation, TrustedIssuer, TrustRegistry
from covey.age.verifier import (
    ChallengeStore,
    Claim,
    MemoryChallengeStore,
    VerifiedAge,
    Verifier,
)
from covey.age.wallet import HeldCredential, LinkSecret, Wallet

__all__ = [
    "BIRTHDATE_ATTRIBUTE",
    "DEFAULT_BAND_VALIDITY",
    "DEFAULT_THRESHOLD_YEARS",
    "AgeBand",
    "AgeChallenge",
    "AgeError",
    "Approved",
    "BirthDateCheck",
    "ChallengeStore",
    "CheckOutcome",
    "Claim",
    "CredentialRevoked",
    "CredentialUnknown",
    "HeldCredential",
    "IssuanceRejected",
    "IssuanceResult",
    "Issuer",
    "IssuerUntrusted",
    "LinkSecret",
    "MalformedPresentation",
    "ManualApproval",
    "MemoryChallengeStore",
    "NoMatchingCredential",
    "NonceExpired",
    "NonceUnknown",
    "NonceUsed",
    "OfferUnknown",
    "Pending",
    "PendingTicket",
    "Predicate",
    "PredicateMismatch",
    "PredicateUnsatisfiable",
    "ProofInvalid",
    "RegistryFull",
    "Rejected",
    "Revocation",
    "RevocationStale",
    "TicketUnknown",
    "TrustRegistry",
    "TrustedIssuer",
    "VerifiedAge",
    "Verifier",
    "Wallet",
    "WalletCorrupt",
    "band_expires_at",
    "band_predicate",
    "cutoff_dateint",
    "from_dateint",
    "to_dateint",
    "years_before",
]
