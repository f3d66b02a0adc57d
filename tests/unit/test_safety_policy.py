"""The safety policy as tables: every band combination, every mode, every contact path."""

from __future__ import annotations

import itertools
import re

import pytest

from covey.age.bands import AgeBand
from covey.errors import CoveyError, InvalidInput
from covey.safety.policy import (
    ContactAction,
    ContactCode,
    ContactRefused,
    ConversationPolicy,
    Member,
    Party,
    PolicyConfig,
    PolicyMode,
    Protection,
    PublicCode,
    Relationship,
    contact_safety_notice,
    conversation_policy,
    decide_contact,
    decide_group_join,
    parse_mode,
    unknown_account,
)

A, U, V = AgeBand.SIXTEEN_PLUS, AgeBand.UNDER_16, AgeBand.UNVERIFIED
BANDS = (A, U, V)
MODES = tuple(PolicyMode)
SAFE, DEVICE, E2EE = Protection.SAFEGUARDED, Protection.ON_DEVICE_DETECTION, Protection.END_TO_END
CONFIGS = [PolicyConfig(mode=mode) for mode in MODES]

# --- conversation protection -----------------------------------------------------------

# (band of a, band of b) -> protection under safeguarded, on-device, e2ee-only
TWO_PARTY = {
    (A, A): (E2EE, E2EE, E2EE),
    (A, U): (SAFE, DEVICE, E2EE),
    (A, V): (SAFE, DEVICE, E2EE),
    (U, A): (SAFE, DEVICE, E2EE),
    (U, U): (SAFE, DEVICE, E2EE),
    (U, V): (SAFE, DEVICE, E2EE),
    (V, A): (SAFE, DEVICE, E2EE),
    (V, U): (SAFE, DEVICE, E2EE),
    (V, V): (SAFE, DEVICE, E2EE),
}


def test_two_party_table_covers_every_pair() -> None:
    assert set(TWO_PARTY) == set(itertools.product(BANDS, repeat=2))


@pytest.mark.parametrize("mode_index,mode", list(enumerate(MODES)))
@pytest.mark.parametrize("pair", list(TWO_PARTY))
def test_two_party_protection(pair: tuple[AgeBand, AgeBand], mode_index: int,
                              mode: PolicyMode) -> None:
    policy = conversation_policy({"ann": pair[0], "bob": pair[1]}, PolicyConfig(mode=mode))
    assert policy.protection is TWO_PARTY[pair][mode_index]
    _check_consistent(policy.protection, mode, {"ann": pair[0], "bob": pair[1]}, policy)


def _expected_protection(bands: tuple[AgeBand, ...], mode: PolicyMode) -> Protection:
    if all(band is A for band in bands):
        return E2EE
    return {PolicyMode.SAFEGUARDED: SAFE, PolicyMode.ON_DEVICE: DEVICE,
            PolicyMode.E2EE_ONLY: E2EE}[mode]


def _check_consistent(protection: Protection, mode: PolicyMode,
                      participants: dict[str, AgeBand], policy: ConversationPolicy) -> None:
    assert policy.mode is mode
    assert policy.safety_copy_required is (protection is SAFE)
    assert policy.server_detection is (protection is SAFE)
    protected = {user for user, band in participants.items() if band is not A}
    assert policy.on_device_detection_users == (protected if protection is DEVICE else set())
    assert policy.reason.startswith(policy.label.split(",")[0])
    if protection is SAFE:
        assert policy.reason == ("safeguarded: the safety service can read this conversation "
                                 "because a participant is under 16 or unverified")
        assert policy.label == "safeguarded"
    else:
        assert "end-to-end encrypted" in policy.label
        assert "safety service can read" not in policy.reason
    # The banner never names who triggered it.
    for user in participants:
        assert user not in policy.reason


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bands", list(itertools.product(BANDS, repeat=3)))
def test_three_party_protection(bands: tuple[AgeBand, AgeBand, AgeBand],
                                mode: PolicyMode) -> None:
    participants = dict(zip(("ann", "bob", "cat"), bands, strict=True))
    policy = conversation_policy(participants, PolicyConfig(mode=mode))
    expected = _expected_protection(bands, mode)
    assert policy.protection is expected
    _check_consistent(expected, mode, participants, policy)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("band", BANDS)
def test_one_participant(band: AgeBand, mode: PolicyMode) -> None:
    policy = conversation_policy({"ann": band}, PolicyConfig(mode=mode))
    assert policy.protection is _expected_protection((band,), mode)


def test_codes_are_stable() -> None:
    codes = {(mode, conversation_policy({"a": A, "b": U}, PolicyConfig(mode=mode)).code)
             for mode in MODES}
    assert codes == {
        (PolicyMode.SAFEGUARDED, "safeguarded.under_age_or_unverified"),
        (PolicyMode.ON_DEVICE, "on_device.under_age_or_unverified"),
        (PolicyMode.E2EE_ONLY, "e2ee_only.under_age_or_unverified"),
    }
    for config in CONFIGS:
        assert conversation_policy({"a": A, "b": A}, config).code == "e2ee.all_verified_adult"


def test_threshold_is_configurable_and_named_in_the_reason() -> None:
    policy = conversation_policy({"a": A, "b": U}, PolicyConfig(age_threshold_years=18))
    assert "under 18" in policy.reason and policy.age_threshold_years == 18
    adults = conversation_policy({"a": A, "b": A}, PolicyConfig(age_threshold_years=18))
    assert "18 or over" in adults.reason


def test_empty_conversation_is_invalid() -> None:
    with pytest.raises(InvalidInput):
        conversation_policy({}, PolicyConfig())


def test_statement_bytes_are_labelled_and_bind_the_conversation() -> None:
    policy = conversation_policy({"a": A, "b": U}, PolicyConfig())
    first = policy.statement_bytes("dm:aaa:bbb", 0, 1)
    assert first.startswith(b"covey/conversation-policy/v1\x00")
    assert first == policy.statement_bytes("dm:aaa:bbb", 0, 1)
    assert first != policy.statement_bytes("dm:aaa:ccc", 0, 1)
    assert first != policy.statement_bytes("dm:aaa:bbb", 1, 1)


def test_config_validation() -> None:
    assert PolicyConfig().mode is PolicyMode.SAFEGUARDED
    assert PolicyConfig(mode="on-device").mode is PolicyMode.ON_DEVICE  # type: ignore[arg-type]
    assert parse_mode("e2ee-only") is PolicyMode.E2EE_ONLY
    with pytest.raises(InvalidInput, match="safeguarded, on-device, e2ee-only"):
        parse_mode("none")
    for bad in ({"age_threshold_years": 0}, {"minor_block_report_threshold": 0},
                {"minor_contact_request_limit": -1}):
        with pytest.raises(InvalidInput):
            PolicyConfig(**bad)  # type: ignore[arg-type]


# --- contact rules: pairwise table -----------------------------------------------------

OK = ContactCode.ALLOWED
NEEDS = ContactCode.UNDER_AGE_NEEDS_CONTACT
HIDDEN = ContactCode.UNDER_AGE_NOT_DISCOVERABLE
UNVER = ContactCode.UNVERIFIED_WITH_UNDER_AGE
ALREADY = ContactCode.ALREADY_CONTACTS

# (actor band, target band) -> (code when not contacts, code when contacts), per action
PAIRWISE: dict[ContactAction, dict[tuple[AgeBand, AgeBand], tuple[ContactCode, ContactCode]]] = {
    ContactAction.OPEN_CONVERSATION: {
        (A, A): (OK, OK), (A, U): (NEEDS, OK), (A, V): (OK, OK),
        (U, A): (NEEDS, OK), (U, U): (NEEDS, OK), (U, V): (UNVER, UNVER),
        (V, A): (OK, OK), (V, U): (UNVER, UNVER), (V, V): (OK, OK),
    },
    ContactAction.ADD_TO_GROUP: {
        (A, A): (OK, OK), (A, U): (NEEDS, OK), (A, V): (OK, OK),
        (U, A): (NEEDS, OK), (U, U): (NEEDS, OK), (U, V): (UNVER, UNVER),
        (V, A): (OK, OK), (V, U): (UNVER, UNVER), (V, V): (OK, OK),
    },
    ContactAction.FIND_BY_HANDLE: {
        (A, A): (OK, OK), (A, U): (HIDDEN, OK), (A, V): (OK, OK),
        (U, A): (OK, OK), (U, U): (OK, OK), (U, V): (UNVER, UNVER),
        (V, A): (OK, OK), (V, U): (UNVER, UNVER), (V, V): (OK, OK),
    },
    ContactAction.SEND_CONTACT_REQUEST: {
        (A, A): (OK, ALREADY), (A, U): (OK, ALREADY), (A, V): (OK, ALREADY),
        (U, A): (OK, ALREADY), (U, U): (OK, ALREADY), (U, V): (UNVER, UNVER),
        (V, A): (OK, ALREADY), (V, U): (UNVER, UNVER), (V, V): (OK, ALREADY),
    },
    ContactAction.JOIN_BY_INVITE: {  # joiner -> one member
        (A, A): (OK, OK), (A, U): (NEEDS, OK), (A, V): (OK, OK),
        (U, A): (NEEDS, OK), (U, U): (NEEDS, OK), (U, V): (UNVER, UNVER),
        (V, A): (OK, OK), (V, U): (UNVER, UNVER), (V, V): (OK, OK),
    },
}

PAIRWISE_CASES = [
    (action, actor, target, contacts, codes[contacts])
    for action, table in PAIRWISE.items()
    for (actor, target), codes in table.items()
    for contacts in (False, True)
]


def test_pairwise_table_is_complete() -> None:
    assert set(PAIRWISE) == set(ContactAction)
    for table in PAIRWISE.values():
        assert set(table) == set(itertools.product(BANDS, repeat=2))


@pytest.mark.parametrize("config", CONFIGS, ids=[c.mode.value for c in CONFIGS])
@pytest.mark.parametrize("action,actor_band,target_band,contacts,expected", PAIRWISE_CASES)
def test_pairwise_contact_rules(action: ContactAction, actor_band: AgeBand,
                                target_band: AgeBand, contacts: bool, expected: ContactCode,
                                config: PolicyConfig) -> None:
    actor, target = Party("actor", actor_band), Party("target", target_band)
    decision = decide_contact(action, actor, target, Relationship(contacts=contacts), config)
    assert decision.code is expected
    assert decision.allowed is (expected is OK)
    assert decision.action is action
    assert decision.reason
    _check_public_side(decision.allowed, decision.code, decision.public_code,
                       decision.public_reason, action)


REVEALING = re.compile(r"\b(\d+|age|aged|child\w*|minor\w*|young|verif\w*|rate|limit\w*)\b",
                       re.IGNORECASE)
AGE_CODES = {NEEDS, HIDDEN, UNVER, ContactCode.BARRED_FROM_UNDER_AGE,
             ContactCode.UNDER_AGE_REQUEST_LIMIT}


def _check_public_side(allowed: bool, code: ContactCode, public: PublicCode,
                       public_reason: str, action: ContactAction) -> None:
    """What the actor sees never gives away that the target is under age."""
    if allowed:
        assert public is PublicCode.ALLOWED
        return
    if action is ContactAction.FIND_BY_HANDLE:
        assert public is PublicCode.NOT_FOUND
    if code in AGE_CODES:
        assert public in {PublicCode.NOT_FOUND, PublicCode.CONTACT_REQUEST_REQUIRED,
                          PublicCode.CONTACT_NOT_PERMITTED}
        assert not REVEALING.search(public_reason), public_reason


# --- blocks, bars, limits, preferences --------------------------------------------------


PAIRWISE_ACTIONS = [a for a in ContactAction if a is not ContactAction.JOIN_BY_INVITE]


@pytest.mark.parametrize("action", PAIRWISE_ACTIONS)
@pytest.mark.parametrize("actor_band,target_band", list(itertools.product(BANDS, repeat=2)))
@pytest.mark.parametrize("contacts", [False, True])
def test_a_block_by_the_target_stops_every_path(action: ContactAction, actor_band: AgeBand,
                                                target_band: AgeBand, contacts: bool) -> None:
    rel = Relationship(contacts=contacts, target_blocked_actor=True)
    decision = decide_contact(action, Party("actor", actor_band), Party("target", target_band),
                              rel, PolicyConfig())
    assert not decision.allowed and decision.code is ContactCode.BLOCKED_BY_TARGET
    expected_public = (PublicCode.NOT_FOUND if action is ContactAction.FIND_BY_HANDLE
                       else PublicCode.CONTACT_NOT_PERMITTED)
    assert decision.public_code is expected_public  # "blocked you" is not announced


@pytest.mark.parametrize("action", PAIRWISE_ACTIONS)
@pytest.mark.parametrize("actor_band,target_band", list(itertools.product(BANDS, repeat=2)))
def test_blocking_someone_stops_you_contacting_them(action: ContactAction, actor_band: AgeBand,
                                                    target_band: AgeBand) -> None:
    rel = Relationship(contacts=True, actor_blocked_target=True)
    decision = decide_contact(action, Party("actor", actor_band), Party("target", target_band),
                              rel, PolicyConfig())
    if action is ContactAction.FIND_BY_HANDLE:
        # You may still look up whom you blocked (to unblock), within the age rules.
        assert decision.code is PAIRWISE[action][(actor_band, target_band)][True]
    else:
        assert decision.code is ContactCode.ACTOR_BLOCKED_TARGET
        assert decision.public_code is PublicCode.UNBLOCK_FIRST


@pytest.mark.parametrize("threshold", [1, 3, 5])
def test_adults_blocked_or_reported_by_enough_children_lose_requests_to_children(
        threshold: int) -> None:
    config = PolicyConfig(minor_block_report_threshold=threshold)
    child = Party("child", U)
    for count in range(threshold + 2):
        adult = Party("adult", A, under_age_blocks_and_reports=count)
        to_child = decide_contact(ContactAction.SEND_CONTACT_REQUEST, adult, child,
                                  Relationship(), config)
        from_child = decide_contact(ContactAction.SEND_CONTACT_REQUEST, child, adult,
                                    Relationship(), config)
        to_adult = decide_contact(ContactAction.SEND_CONTACT_REQUEST, adult, Party("peer", A),
                                  Relationship(), config)
        barred = count >= threshold
        assert to_child.allowed is not barred and from_child.allowed is not barred
        assert to_adult.allowed  # adults are unaffected
        if barred:
            assert to_child.code is ContactCode.BARRED_FROM_UNDER_AGE
            assert to_child.public_code is PublicCode.CONTACT_NOT_PERMITTED
            assert to_child.withheld  # answered as sent; the child never sees it
        # An existing contact stays reachable, with a notice on the child's side.
        existing = decide_contact(ContactAction.OPEN_CONVERSATION, adult, child,
                                  Relationship(contacts=True), config)
        assert existing.allowed
        notice = contact_safety_notice(child, adult, config)
        assert (notice is not None) is barred
        assert contact_safety_notice(adult, child, config) is None


def test_children_are_never_barred() -> None:
    config = PolicyConfig(minor_block_report_threshold=1)
    bully = Party("kid", U, under_age_blocks_and_reports=50)
    decision = decide_contact(ContactAction.SEND_CONTACT_REQUEST, bully, Party("kid2", U),
                              Relationship(), config)
    assert decision.allowed  # children blocking children is handled by blocks, not bars


@pytest.mark.parametrize("limit", [0, 1, 10])
def test_requests_to_children_are_rate_limited_per_sender(limit: int) -> None:
    config = PolicyConfig(minor_contact_request_limit=limit)
    for sent in range(limit + 2):
        adult = Party("adult", A, recent_requests_to_under_age=sent)
        decision = decide_contact(ContactAction.SEND_CONTACT_REQUEST, adult, Party("c", U),
                                  Relationship(), config)
        assert decision.allowed is (sent < limit)
        if not decision.allowed:
            assert decision.code is ContactCode.UNDER_AGE_REQUEST_LIMIT
            assert decision.public_code is PublicCode.CONTACT_NOT_PERMITTED
            assert decision.withheld
        to_adult = decide_contact(ContactAction.SEND_CONTACT_REQUEST, adult, Party("b", A),
                                  Relationship(), config)
        assert to_adult.allowed


def test_pending_request_and_self() -> None:
    config = PolicyConfig()
    for actor, target in itertools.product(BANDS, repeat=2):
        if {actor, target} == {U, V}:
            continue
        decision = decide_contact(ContactAction.SEND_CONTACT_REQUEST, Party("a", actor),
                                  Party("b", target), Relationship(request_pending=True), config)
        assert decision.code is ContactCode.REQUEST_PENDING
    for band, action in itertools.product(BANDS, PAIRWISE_ACTIONS):
        me = Party("me", band)
        assert decide_contact(action, me, me, Relationship(), config).code is ContactCode.SELF


@pytest.mark.parametrize("actor_band", [A, V])
def test_contacts_only_preference_covers_adult_refusals(actor_band: AgeBand) -> None:
    """An adult who only accepts contacts is refused exactly like a child would refuse."""
    private = Party("adult", A, contacts_only=True)
    decision = decide_contact(ContactAction.OPEN_CONVERSATION, Party("x", actor_band), private,
                              Relationship(), PolicyConfig())
    assert decision.code is ContactCode.CONTACTS_ONLY
    child_refusal = decide_contact(ContactAction.OPEN_CONVERSATION, Party("y", A),
                                   Party("child", U), Relationship(), PolicyConfig())
    assert decision.public_code is child_refusal.public_code
    assert decision.public_reason == child_refusal.public_reason
    assert decide_contact(ContactAction.OPEN_CONVERSATION, Party("x", actor_band), private,
                          Relationship(contacts=True), PolicyConfig()).allowed


def test_a_declined_sender_is_asked_to_wait_whoever_the_target_is() -> None:
    declined = Relationship(declined_recently=True)
    answers = set()
    for actor, target in itertools.product(BANDS, repeat=2):
        if {actor, target} == {U, V}:
            continue  # refused (withheld) before any cooldown
        decision = decide_contact(ContactAction.SEND_CONTACT_REQUEST, Party("a", actor),
                                  Party("b", target, under_age_blocks_and_reports=0),
                                  declined, PolicyConfig())
        assert decision.code is ContactCode.DECLINED_RECENTLY and not decision.withheld
        with pytest.raises(ContactRefused) as refusal:
            decision.raise_if_refused()
        answers.add((refusal.value.status, refusal.value.code, refusal.value.message))
    (answer,) = answers  # one answer, whatever the bands
    assert answer[:2] == (409, "ask_again_later")
    assert not REVEALING.search(answer[2])


def test_withheld_requests_are_the_refusals_the_sender_must_not_learn() -> None:
    config = PolicyConfig()
    unverified_to_child = decide_contact(ContactAction.SEND_CONTACT_REQUEST, Party("v", V),
                                         Party("c", U), Relationship(), config)
    blocked = decide_contact(ContactAction.SEND_CONTACT_REQUEST, Party("a", A),
                             Party("b", A), Relationship(target_blocked_actor=True), config)
    assert unverified_to_child.withheld and blocked.withheld
    pending = decide_contact(ContactAction.SEND_CONTACT_REQUEST, Party("a", A),
                             Party("b", U), Relationship(request_pending=True), config)
    assert not pending.withheld  # the sender knows its own request
    assert not decide_contact(ContactAction.OPEN_CONVERSATION, Party("v", V), Party("c", U),
                              Relationship(), config).withheld


# --- every path an unverified or 16+ stranger might take to reach a child -----------------


@pytest.mark.parametrize("config", CONFIGS, ids=[c.mode.value for c in CONFIGS])
@pytest.mark.parametrize("stranger_band", [A, V])
def test_strangers_are_refused_on_every_path(stranger_band: AgeBand,
                                             config: PolicyConfig) -> None:
    stranger, child = Party("stranger", stranger_band), Party("child", U)
    none = Relationship()
    paths = {
        "direct message": decide_contact(ContactAction.OPEN_CONVERSATION, stranger, child,
                                         none, config),
        "handle search": decide_contact(ContactAction.FIND_BY_HANDLE, stranger, child, none,
                                        config),
        "group add": decide_group_join(child, [Member(stranger, none)], config,
                                       adder=stranger, adder_relationship=none),
        "invite link": decide_group_join(stranger, [Member(child, none)], config),
        "child's invite link": decide_group_join(stranger, [Member(child, none)], config),
    }
    for path, decision in paths.items():
        assert not decision.allowed, path
        with pytest.raises(CoveyError) as exc:
            decision.raise_if_refused()
        assert 400 <= exc.value.status < 500
        assert exc.value.code in {"not_found", "contact_request_required",
                                  "contact_not_permitted"}
    request = decide_contact(ContactAction.SEND_CONTACT_REQUEST, stranger, child, none, config)
    # A 16+ stranger may ask (the child decides); an unverified one may not even ask.
    assert request.allowed is (stranger_band is A)


def test_raise_if_refused() -> None:
    allowed = decide_contact(ContactAction.OPEN_CONVERSATION, Party("a", A), Party("b", A),
                             Relationship(), PolicyConfig())
    allowed.raise_if_refused()
    hidden = decide_contact(ContactAction.FIND_BY_HANDLE, Party("a", A), Party("b", U),
                            Relationship(), PolicyConfig())
    with pytest.raises(CoveyError) as exc:
        hidden.raise_if_refused()
    assert (exc.value.status, exc.value.code) == (404, "not_found")
    # Exactly an unknown account's answer: no details that would tell the two apart.
    assert exc.value.details == {}
    assert exc.value.to_json() == unknown_account().to_json()
    refused = decide_contact(ContactAction.OPEN_CONVERSATION, Party("a", A), Party("b", U),
                             Relationship(), PolicyConfig())
    with pytest.raises(ContactRefused) as refusal:
        refused.raise_if_refused()
    assert (refusal.value.status, refusal.value.code) == (403, "contact_request_required")


# --- groups: every 3-party combination ------------------------------------------------------


def _group_allowed(joiner: AgeBand, members: tuple[AgeBand, ...], contacts: bool) -> bool:
    """The oracle: each joiner-member pair must pass the pairwise membership table."""
    return all(PAIRWISE[ContactAction.JOIN_BY_INVITE][(joiner, m)][contacts] is OK
               for m in members)


@pytest.mark.parametrize("config", CONFIGS, ids=[c.mode.value for c in CONFIGS])
@pytest.mark.parametrize("joiner,first,second", list(itertools.product(BANDS, repeat=3)))
@pytest.mark.parametrize("contacts", [False, True])
def test_invite_link_join_into_two_member_groups(joiner: AgeBand, first: AgeBand,
                                                 second: AgeBand, contacts: bool,
                                                 config: PolicyConfig) -> None:
    members = [Member(Party("m1", first), Relationship(contacts=contacts)),
               Member(Party("m2", second), Relationship(contacts=contacts))]
    decision = decide_group_join(Party("joiner", joiner), members, config)
    assert decision.action is ContactAction.JOIN_BY_INVITE
    assert decision.allowed is _group_allowed(joiner, (first, second), contacts)
    if not decision.allowed:
        assert decision.subject in {"m1", "m2"}
        _check_public_side(False, decision.code, decision.public_code, decision.public_reason,
                           decision.action)


@pytest.mark.parametrize("adder,joiner,other", list(itertools.product(BANDS, repeat=3)))
@pytest.mark.parametrize("contacts", [False, True])
def test_group_add_checks_the_adder_and_every_member(adder: AgeBand, joiner: AgeBand,
                                                     other: AgeBand, contacts: bool) -> None:
    config = PolicyConfig()
    rel = Relationship(contacts=contacts)
    adder_party = Party("adder", adder)
    members = [Member(adder_party, rel), Member(Party("other", other), rel)]
    decision = decide_group_join(Party("joiner", joiner), members, config, adder=adder_party,
                                 adder_relationship=rel)
    expected = (PAIRWISE[ContactAction.ADD_TO_GROUP][(adder, joiner)][contacts] is OK
                and _group_allowed(joiner, (adder, other), contacts))
    assert decision.allowed is expected
    assert decision.action is ContactAction.ADD_TO_GROUP


def test_an_accepted_adult_cannot_bring_a_child_into_a_group_of_strangers() -> None:
    adult, child, stranger = Party("adult", A), Party("child", U), Party("stranger", A)
    contacts = Relationship(contacts=True)
    decision = decide_group_join(child, [Member(adult, contacts), Member(stranger)],
                                 PolicyConfig(), adder=adult, adder_relationship=contacts)
    assert not decision.allowed
    assert decision.code is NEEDS and decision.subject == "stranger"


@pytest.mark.parametrize("blocked_by_child", [True, False])
def test_blocks_involving_a_child_keep_them_out_of_shared_groups(blocked_by_child: bool) -> None:
    child, adult = Party("child", U), Party("adult", A)
    # The adult joins a group the child is in; the relationship is from the joiner's side.
    rel = Relationship(contacts=True, target_blocked_actor=blocked_by_child,
                       actor_blocked_target=not blocked_by_child)
    assert not decide_group_join(adult, [Member(child, rel)], PolicyConfig()).allowed
    # Between adults, a block hides messages on the client but does not bar a group.
    peers = Relationship(target_blocked_actor=True)
    assert decide_group_join(adult, [Member(Party("peer", A), peers)], PolicyConfig()).allowed
