"""The verifier against honest and dishonest holders: bands, replays, forgeries, revocation."""

from __future__ import annotations

import copy
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anoncreds
import pytest

from covey.age import (
    AgeBand,
    AgeChallenge,
    ChallengeRefused,
    CredentialRevoked,
    Issuer,
    IssuerUntrusted,
    MalformedPresentation,
    NoMatchingCredential,
    NonceExpired,
    NonceUnknown,
    NonceUsed,
    Predicate,
    PredicateMismatch,
    PredicateUnsatisfiable,
    ProofInvalid,
    RevocationStale,
    TrustRegistry,
    VerifiedAge,
    Verifier,
    Wallet,
    band_predicate,
    from_dateint,
    to_dateint,
    years_before,
)
from covey.errors import CoveyError
from tests.support.age_fixtures import (
    FakeClock,
    born_years_ago,
    covey_issuer,
    holder,
    raw_issuer,
    registry_for,
    today,
)


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return covey_issuer()


@pytest.fixture(scope="module")
def tails(issuer: Issuer) -> Path:
    return issuer.tails_path.parent


@pytest.fixture(scope="module")
def adult(issuer: Issuer) -> Wallet:
    return holder(issuer, born_years_ago(30))[0]


@pytest.fixture(scope="module")
def child(issuer: Issuer) -> Wallet:
    return holder(issuer, born_years_ago(10))[0]


@pytest.fixture
def registry(issuer: Issuer) -> TrustRegistry:
    return registry_for(issuer.publish())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def verifier(registry: TrustRegistry, clock: FakeClock) -> Verifier:
    return Verifier(registry, clock=clock)


def answer(wallet: Wallet, challenge: AgeChallenge | dict[str, Any], registry: TrustRegistry,
           tails: Path) -> dict[str, Any]:
    return wallet.present(challenge, status_lists=registry.status_lists(), tails_dir=tails)


def assert_code(exc: pytest.ExceptionInfo[CoveyError], code: str) -> None:
    assert exc.value.code == code
    assert 400 <= exc.value.status < 500


# -- honest holders --------------------------------------------------------------------


def test_adult_gets_sixteen_plus(adult: Wallet, verifier: Verifier, registry: TrustRegistry,
                                 tails: Path, issuer: Issuer, clock: FakeClock) -> None:
    challenge = verifier.challenge(AgeBand.SIXTEEN_PLUS)
    result = verifier.verify(json.dumps(answer(adult, challenge.to_json(), registry, tails)))
    assert result == VerifiedAge(AgeBand.SIXTEEN_PLUS, clock.now + timedelta(days=90),
                                 issuer.issuer_id, clock.now)
    # Band, expiry, issuer, time: nothing else survives a verification.
    assert [f.name for f in dataclasses.fields(VerifiedAge)] == [
        "band", "expires_at", "issuer_id", "verified_at"]


def test_child_gets_under_16(child: Wallet, verifier: Verifier, registry: TrustRegistry,
                             tails: Path, clock: FakeClock) -> None:
    challenge = verifier.challenge(AgeBand.UNDER_16)
    result = verifier.verify(answer(child, challenge, registry, tails))
    assert result.band is AgeBand.UNDER_16
    assert clock.now + timedelta(days=88) < result.expires_at <= clock.now + timedelta(days=90)


def test_exactly_sixteen_today_is_sixteen_plus(issuer: Issuer, verifier: Verifier,
                                               registry: TrustRegistry, tails: Path) -> None:
    # Born 16 years before yesterday: 16 in every time zone on Earth.
    wallet, _ = holder(issuer, born_years_ago(16, days=1))
    challenge = verifier.challenge(AgeBand.SIXTEEN_PLUS)
    assert verifier.verify(answer(wallet, challenge, registry, tails)).band is AgeBand.SIXTEEN_PLUS
    with pytest.raises(PredicateUnsatisfiable):
        answer(wallet, verifier.challenge(AgeBand.UNDER_16), registry, tails)


def test_child_turning_16_soon_proves_a_shorter_horizon(issuer: Issuer, verifier: Verifier,
                                                        registry: TrustRegistry, tails: Path,
                                                        clock: FakeClock) -> None:
    birthday = today() + timedelta(days=40)
    wallet, _ = holder(issuer, birthday.replace(year=birthday.year - 16))
    with pytest.raises(PredicateUnsatisfiable):
        answer(wallet, verifier.challenge(AgeBand.UNDER_16), registry, tails)
    result = verifier.verify(answer(wallet, verifier.challenge(AgeBand.UNDER_16,
                                                               horizon_days=30),
                                    registry, tails))
    assert result.band is AgeBand.UNDER_16
    assert result.expires_at <= datetime.combine(birthday, datetime.min.time(), tzinfo=UTC)
    assert result.expires_at <= clock.now + timedelta(days=30)
    with pytest.raises(CoveyError):  # only the fixed ladder of horizons
        verifier.challenge(AgeBand.UNDER_16, horizon_days=20)


@pytest.mark.parametrize("predicate", [
    Predicate("<=", 20000615),  # "born on or before 15 June 2000?": bisecting a birthday
    Predicate(">", 20000615),
    Predicate(">=", 20000615),
])
def test_wallet_refuses_questions_that_are_not_a_band(adult: Wallet, verifier: Verifier,
                                                      registry: TrustRegistry, tails: Path,
                                                      predicate: Predicate) -> None:
    challenge = verifier.challenge(AgeBand.SIXTEEN_PLUS)
    with pytest.raises(ChallengeRefused) as exc:
        answer(adult, dataclasses.replace(challenge, predicate=predicate), registry, tails)
    assert_code(exc, "challenge_refused")


def test_wallet_refuses_an_odd_horizon_or_threshold(child: Wallet, registry: TrustRegistry,
                                                    tails: Path) -> None:
    honest = Verifier(registry).challenge(AgeBand.UNDER_16, horizon_days=7)
    answer(child, honest, registry, tails)  # a ladder horizon is fine
    now = datetime.now(UTC)
    odd = dataclasses.replace(honest, horizon_days=45,
                              predicate=band_predicate(AgeBand.UNDER_16, now, horizon_days=45))
    with pytest.raises(ChallengeRefused):
        answer(child, odd, registry, tails)
    thirteen = Verifier(registry, threshold_years=13).challenge(AgeBand.UNDER_16)
    with pytest.raises(ChallengeRefused):  # this wallet only proves the 16-year threshold
        answer(child, thirteen, registry, tails)


@pytest.fixture
def dishonest_wallet(monkeypatch: pytest.MonkeyPatch) -> None:
    """A modified wallet that answers any question (the verifier must still hold)."""
    monkeypatch.setattr("covey.age.wallet.is_band_predicate", lambda *a, **k: True)


# -- the wrong predicate ---------------------------------------------------------------


def test_adult_cannot_prove_under_16(adult: Wallet, verifier: Verifier, registry: TrustRegistry,
                                     tails: Path, issuer: Issuer) -> None:
    challenge = verifier.challenge(AgeBand.UNDER_16)
    with pytest.raises(PredicateUnsatisfiable):
        answer(adult, challenge, registry, tails)
    # Below the wallet, the library itself refuses to prove a false predicate.
    held = adult.credentials()[0]
    present = anoncreds.PresentCredentials()
    present.add_predicates(anoncreds.Credential.load(held.credential), "birthdate")
    entry = issuer.publish()
    request = challenge.presentation_request()
    request.pop("non_revoked")
    with pytest.raises(anoncreds.AnoncredsError, match="Predicate is not satisfied"):
        anoncreds.Presentation.create(request, present, {}, adult._link_secret.value,
                                      {entry["schema_id"]: entry["schema"]},
                                      {entry["cred_def_id"]: entry["cred_def"]})


def test_child_cannot_prove_sixteen_plus(child: Wallet, verifier: Verifier,
                                         registry: TrustRegistry, tails: Path) -> None:
    with pytest.raises(PredicateUnsatisfiable):
        answer(child, verifier.challenge(AgeBand.SIXTEEN_PLUS), registry, tails)


@pytest.mark.usefixtures("dishonest_wallet")
def test_proof_of_another_predicate_is_rejected(adult: Wallet, verifier: Verifier,
                                                registry: TrustRegistry, tails: Path) -> None:
    challenge = verifier.challenge(AgeBand.SIXTEEN_PLUS)
    # The adult answers the right nonce with a weaker statement: "born before 2090".
    weaker = dataclasses.replace(challenge, predicate=Predicate("<", 20900101))
    with pytest.raises(PredicateMismatch) as exc:
        verifier.verify(answer(adult, weaker, registry, tails))
    assert_code(exc, "predicate_mismatch")


@pytest.mark.usefixtures("dishonest_wallet")
def test_same_predicate_with_other_operator_is_rejected(child: Wallet, verifier: Verifier,
                                                        registry: TrustRegistry,
                                                        tails: Path) -> None:
    challenge = verifier.challenge(AgeBand.UNDER_16)
    shifted = dataclasses.replace(challenge, predicate=Predicate(
        ">=", challenge.predicate.p_value))
    with pytest.raises(PredicateMismatch):
        verifier.verify(answer(child, shifted, registry, tails))


def test_revealing_extra_attributes_is_rejected(adult: Wallet, verifier: Verifier,
                                                registry: TrustRegistry, tails: Path) -> None:
    challenge = verifier.challenge(AgeBand.SIXTEEN_PLUS)
    submission = answer(adult, challenge, registry, tails)
    submission["presentation"]["requested_proof"]["self_attested_attrs"] = {"name": "x"}
    with pytest.raises(PredicateMismatch):
        verifier.verify(submission)


# -- nonces ------------------------------------------------------------------------------


def test_replayed_presentation_is_rejected(adult: Wallet, verifier: Verifier,
                                           registry: TrustRegistry, tails: Path) -> None:
    submission = answer(adult, verifier.challenge(AgeBand.SIXTEEN_PLUS), registry, tails)
    verifier.verify(submission)
    with pytest.raises(NonceUsed) as exc:
        verifier.verify(submission)
    assert_code(exc, "nonce_used")


def test_reused_nonce_is_rejected(adult: Wallet, verifier: Verifier, registry: TrustRegistry,
                                  tails: Path) -> None:
    challenge = verifier.challenge(AgeBand.SIXTEEN_PLUS)
    first = answer(adult, challenge, registry, tails)
    second = answer(adult, challenge, registry, tails)  # a new proof, same challenge
    assert first != second
    verifier.verify(second)
    with pytest.raises(NonceUsed):
        verifier.verify(first)


def test_expired_nonce_is_rejected(adult: Wallet, verifier: Verifier, registry: TrustRegistry,
                                   tails: Path, clock: FakeClock) -> None:
    submission = answer(adult, verifier.challenge(AgeBand.SIXTEEN_PLUS), registry, tails)
    clock.advance(timedelta(minutes=5))
    with pytest.raises(NonceExpired) as exc:
        verifier.verify(submission)
    assert_code(exc, "nonce_expired")


def test_unknown_nonce_is_rejected(adult: Wallet, verifier: Verifier, registry: TrustRegistry,
                                   tails: Path) -> None:
    other = Verifier(registry)
    submission = answer(adult, other.challenge(AgeBand.SIXTEEN_PLUS), registry, tails)
    with pytest.raises(NonceUnknown) as exc:
        verifier.verify(submission)
    assert_code(exc, "nonce_unknown")


def test_proof_made_for_a_different_nonce_is_rejected(adult: Wallet, verifier: Verifier,
                                                      registry: TrustRegistry,
                                                      tails: Path) -> None:
    mine = verifier.challenge(AgeBand.SIXTEEN_PLUS)
    theirs = verifier.challenge(AgeBand.SIXTEEN_PLUS)
    submission = answer(adult, theirs, registry, tails)
    submission["nonce"] = mine.nonce
    with pytest.raises(ProofInvalid) as exc:
        verifier.verify(submission)
    assert_code(exc, "proof_invalid")


def test_challenge_bound_to_a_subject(adult: Wallet, verifier: Verifier,
                                      registry: TrustRegistry, tails: Path) -> None:
    challenge = verifier.challenge(AgeBand.SIXTEEN_PLUS, subject="account-a")
    submission = answer(adult, challenge, registry, tails)
    with pytest.raises(NonceUnknown):
        verifier.verify(submission, subject="account-b")
    with pytest.raises(NonceUnknown):
        verifier.verify(submission)
    # Another account's attempt does not burn the challenge.
    assert verifier.verify(submission, subject="account-a").band is AgeBand.SIXTEEN_PLUS


# -- issuers and revocation -------------------------------------------------------------


def test_issuer_removed_from_registry_is_untrusted(adult: Wallet, verifier: Verifier,
                                                  registry: TrustRegistry, tails: Path,
                                                  issuer: Issuer) -> None:
    submission = answer(adult, verifier.challenge(AgeBand.SIXTEEN_PLUS), registry, tails)
    registry.distrust(issuer.cred_def_id)
    with pytest.raises(IssuerUntrusted) as exc:
        verifier.verify(submission)
    assert_code(exc, "issuer_untrusted")


def test_credential_from_unknown_issuer_is_rejected(verifier: Verifier,
                                                   registry: TrustRegistry) -> None:
    stranger = raw_issuer()
    wallet = Wallet.create()
    bundle = stranger.offer()
    request = wallet.request_credential(bundle)
    wallet.store_credential(stranger.issue(bundle["offer"], request["request"],
                                           to_dateint(born_years_ago(40))))
    challenge = verifier.challenge(AgeBand.SIXTEEN_PLUS)
    with pytest.raises(NoMatchingCredential):  # an honest wallet doesn't even try
        wallet.present(challenge, status_lists={stranger.rev_reg_def_id:
                                                stranger.status_list.to_dict()},
                       tails_dir=stranger.tails_dir)
    # A dishonest one answers the real nonce with a credential from its own issuer.
    forged = dataclasses.replace(challenge, cred_def_ids=(stranger.cred_def_id,))
    submission = wallet.present(forged, status_lists={stranger.rev_reg_def_id:
                                                      stranger.status_list.to_dict()},
                                tails_dir=stranger.tails_dir)
    with pytest.raises(IssuerUntrusted):
        verifier.verify(submission)


@pytest.mark.slow
def test_revoked_credential_is_rejected(issuer: Issuer, verifier: Verifier,
                                        registry: TrustRegistry, tails: Path) -> None:
    wallet, credential_id = holder(issuer, born_years_ago(25))
    before = registry.status_lists()
    stale = answer(wallet, verifier.challenge(AgeBand.SIXTEEN_PLUS), registry, tails)
    registry.update_status_list(issuer.revoke(credential_id))
    current = registry.status_lists()

    # 1. An honest wallet sees the revocation and refuses.
    with pytest.raises(CredentialRevoked) as exc:
        answer(wallet, verifier.challenge(AgeBand.SIXTEEN_PLUS), registry, tails)
    assert_code(exc, "credential_revoked")

    # 2. A proof made before the revocation is against an outdated status list.
    with pytest.raises(RevocationStale) as stale_exc:
        verifier.verify(stale)
    assert_code(stale_exc, "revocation_stale")
    stale_again = wallet.present(verifier.challenge(AgeBand.SIXTEEN_PLUS), status_lists=before,
                                 tails_dir=tails)
    with pytest.raises(RevocationStale):
        verifier.verify(stale_again)

    # 3. A wallet that hides its revocation bit still cannot prove non-revocation.
    (rev_reg_id, status_list), = current.items()
    doctored = copy.deepcopy(status_list)
    doctored["revocationList"] = [0] * len(doctored["revocationList"])
    submission = wallet.present(verifier.challenge(AgeBand.SIXTEEN_PLUS),
                                status_lists={rev_reg_id: doctored}, tails_dir=tails)
    with pytest.raises(ProofInvalid):
        verifier.verify(submission)

    # Other holders are unaffected once their wallets see the new list.
    other, _ = holder(issuer, born_years_ago(50))
    assert verifier.verify(answer(other, verifier.challenge(AgeBand.SIXTEEN_PLUS), registry,
                                  tails)).band is AgeBand.SIXTEEN_PLUS


@pytest.mark.slow
def test_witness_computed_before_the_challenge_is_used(
        issuer: Issuer, verifier: Verifier, registry: TrustRegistry, tails: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    wallet, _ = holder(issuer, born_years_ago(33))
    fresh = Wallet.from_bytes(wallet.to_bytes())  # as at registration: nothing cached
    fresh.warm_up(tails)
    computed: list[Any] = []
    real = anoncreds.CredentialRevocationState.create
    monkeypatch.setattr(anoncreds.CredentialRevocationState, "create",
                        lambda *args: computed.append(args) or real(*args))
    challenge = verifier.challenge(AgeBand.SIXTEEN_PLUS)
    assert verifier.verify(answer(fresh, challenge, registry, tails)).band is AgeBand.SIXTEEN_PLUS
    assert computed == []
    # A newer status list than the one warmed up for: the proof computes its own.
    registry.update_status_list(issuer.revoke(holder(issuer, born_years_ago(60))[1]))
    challenge = verifier.challenge(AgeBand.SIXTEEN_PLUS)
    assert verifier.verify(answer(fresh, challenge, registry, tails)).band is AgeBand.SIXTEEN_PLUS
    assert len(computed) == 1


def test_presentation_without_non_revocation_proof_is_rejected(
        adult: Wallet, verifier: Verifier, registry: TrustRegistry, tails: Path) -> None:
    submission = answer(adult, verifier.challenge(AgeBand.SIXTEEN_PLUS), registry, tails)
    submission["presentation"]["proof"]["proofs"][0]["non_revoc_proof"] = None
    with pytest.raises(ProofInvalid):
        verifier.verify(submission)


# -- malformed input ---------------------------------------------------------------------


@pytest.mark.parametrize("submission", [
    b"{not json", "[]", "null", json.dumps({"nonce": 12, "presentation": {}}),
    json.dumps({"nonce": "abc", "presentation": {}}),
    json.dumps({"nonce": "123", "presentation": "text"}),
    json.dumps({"nonce": "\u0661\u0662\u0663", "presentation": {}}),  # Arabic-Indic digits
    b"x" * (300 * 1024),
])
def test_malformed_submission_is_rejected(verifier: Verifier, submission: bytes | str) -> None:
    with pytest.raises(MalformedPresentation) as exc:
        verifier.verify(submission)
    assert_code(exc, "malformed_presentation")


@pytest.mark.parametrize("damage", ["drop_proof", "proofs_not_list", "identifiers_missing",
                                    "garbage_numbers"])
def test_damaged_presentation_is_rejected(adult: Wallet, verifier: Verifier,
                                          registry: TrustRegistry, tails: Path,
                                          damage: str) -> None:
    submission = answer(adult, verifier.challenge(AgeBand.SIXTEEN_PLUS), registry, tails)
    presentation = submission["presentation"]
    if damage == "drop_proof":
        del presentation["proof"]
    elif damage == "proofs_not_list":
        presentation["proof"]["proofs"] = "x"
    elif damage == "identifiers_missing":
        del presentation["identifiers"]
    else:
        presentation["proof"]["proofs"][0]["primary_proof"]["eq_proof"]["a_prime"] = "zz"
    with pytest.raises(CoveyError) as exc:
        verifier.verify(submission)
    assert exc.value.code in {"malformed_presentation", "proof_invalid"}
    assert 400 <= exc.value.status < 500


# -- unlinkability -------------------------------------------------------------------------


def leaves(value: Any) -> set[str]:
    """Every scalar in a JSON value; a list of small ints (a byte string) is one value."""
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return {bytes(v % 256 for v in value).hex()}
    if isinstance(value, dict):
        return set().union(*(leaves(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(leaves(v) for v in value)) if value else set()
    return {str(value)}


def test_two_presentations_share_nothing_but_public_ids(adult: Wallet, verifier: Verifier,
                                                        registry: TrustRegistry, tails: Path,
                                                        issuer: Issuer) -> None:
    first_challenge = verifier.challenge(AgeBand.SIXTEEN_PLUS)
    second_challenge = verifier.challenge(AgeBand.SIXTEEN_PLUS)
    first = answer(adult, first_challenge, registry, tails)
    second = answer(adult, second_challenge, registry, tails)
    assert first["nonce"] != second["nonce"]
    common = leaves(first) & leaves(second)
    entry = issuer.publish()
    public = {
        entry["schema_id"], entry["cred_def_id"], entry["revocation"]["rev_reg_def_id"],
        str(entry["revocation"]["status_list"]["timestamp"]),  # same list for every holder
        "birthdate_dateint", "LE", str(first_challenge.predicate.p_value), "None", "0",
    }
    assert common <= public | {str(n) for n in range(10)}, common - public
    # Proof values are long random integers; none repeats between the two.
    long_first = {v for v in leaves(first["presentation"]["proof"]) if len(v) > 16} - public
    long_second = {v for v in leaves(second["presentation"]["proof"]) if len(v) > 16} - public
    assert long_first and long_second and not long_first & long_second


def test_wallet_state_is_secret_and_round_trips(adult: Wallet) -> None:
    restored = Wallet.from_bytes(adult.to_bytes())
    assert [c.credential_id for c in restored.credentials()] == [
        c.credential_id for c in adult.credentials()]
    assert adult._link_secret.value not in repr(adult)
    assert repr(adult._link_secret) == "LinkSecret(<redacted>)"
    held = adult.credentials()[0]
    assert str(held.birthdate_dateint) not in repr(held)


def test_birth_date_is_never_revealed(adult: Wallet, verifier: Verifier,
                                      registry: TrustRegistry, tails: Path) -> None:
    submission = answer(adult, verifier.challenge(AgeBand.SIXTEEN_PLUS), registry, tails)
    birth = str(adult.credentials()[0].birthdate_dateint)
    assert birth not in json.dumps(submission)
    assert submission["presentation"]["requested_proof"]["revealed_attrs"] == {}


def test_trust_registry_file_load_and_reload(tmp_path: Path, issuer: Issuer) -> None:
    path = tmp_path / "trust.json"
    path.write_text(json.dumps({"issuers": []}))
    registry = TrustRegistry.load(path)
    assert registry.cred_def_ids() == []
    path.write_text(json.dumps({"issuers": [issuer.publish()]}))
    registry.reload()
    assert registry.cred_def_ids() == [issuer.cred_def_id]
    path.write_text("{broken")
    with pytest.raises(CoveyError):
        registry.reload()
    assert registry.cred_def_ids() == [issuer.cred_def_id]  # a bad file changes nothing
    registry.save()
    assert json.loads(path.read_text())["issuers"][0]["cred_def_id"] == issuer.cred_def_id


def test_trust_registry_refuses_an_older_status_list(issuer: Issuer) -> None:
    registry = registry_for(issuer.publish())
    (_, status_list), = registry.status_lists().items()
    older = dict(status_list, timestamp=status_list["timestamp"] - 10)
    with pytest.raises(CoveyError):
        registry.update_status_list(older)


def test_unverified_is_not_a_challenge(verifier: Verifier) -> None:
    with pytest.raises(CoveyError):
        verifier.challenge(AgeBand.UNVERIFIED)
    with pytest.raises(CoveyError):
        verifier.challenge(AgeBand.UNDER_16, horizon_days=91)


def test_configurable_threshold(registry: TrustRegistry) -> None:
    eighteen = Verifier(registry, threshold_years=18)
    sixteen = Verifier(registry)
    a = eighteen.challenge(AgeBand.SIXTEEN_PLUS).predicate.p_value
    b = sixteen.challenge(AgeBand.SIXTEEN_PLUS).predicate.p_value
    assert from_dateint(a) == years_before(from_dateint(b), 2)
