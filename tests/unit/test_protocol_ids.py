"""Identifier formats: every pattern must be anchored at both ends, for every alternative."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from covey.protocol.ids import ConversationId, dm_conversation_id, dm_participants, is_group_id

CONVERSATION = TypeAdapter(ConversationId)


@pytest.mark.parametrize(
    "good", ["dm:alice:bob", "grp_abcdEFGH1234", dm_conversation_id("zed", "amy")]
)
def test_valid_conversation_ids(good: str) -> None:
    assert CONVERSATION.validate_python(good) == good


@pytest.mark.parametrize(
    "bad",
    [
        "\x00grp_abcdEFGH1234",
        "xgrp_abcdEFGH1234",
        "grp_abcdEFGH1234\x00",
        "dm:alice:bob\x00",
        "dm:alice:bob:carol",
        " dm:alice:bob",
        "dm:alice:bob\n",
        "grp_short",
        "dm:al:bob",
    ],
)
def test_conversation_ids_are_anchored(bad: str) -> None:
    with pytest.raises(ValidationError):
        CONVERSATION.validate_python(bad)


def test_dm_helpers() -> None:
    assert dm_conversation_id("bob", "alice") == "dm:alice:bob"
    assert dm_participants("dm:alice:bob") == ("alice", "bob")
    assert dm_participants("grp_abcdEFGH1234") is None
    assert is_group_id("grp_abcdEFGH1234") and not is_group_id("dm:alice:bob")
