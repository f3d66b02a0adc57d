"""Covey's safety engine: the age-aware policy, safety copies and detectors. Pure, no I/O
except where a detector loads its operator file."""

from covey.protocol.safety_copy import (
    SafetyCopyContext,
    SafetyCopyError,
    SafetyServicePrivateKey,
    SafetyServicePublicKey,
    open_safety_copy,
    seal_safety_copy,
)
from covey.protocol.wire import SafetyCopy
from covey.safety.policy import (
    ContactAction,
    ContactCode,
    ContactDecision,
    ContactRefused,
    ConversationPolicy,
    Member,
    Party,
    PolicyConfig,
    PolicyMode,
    Protection,
    PublicCode,
    Relationship,
    SafetyNotice,
    contact_safety_notice,
    conversation_policy,
    decide_contact,
    decide_group_join,
)

__all__ = [
    "ContactAction",
    "ContactCode",
    "ContactDecision",
    "ContactRefused",
    "ConversationPolicy",
    "Member",
    "Party",
    "PolicyConfig",
    "PolicyMode",
    "Protection",
    "PublicCode",
    "Relationship",
    "SafetyCopy",
    "SafetyCopyContext",
    "SafetyCopyError",
    "SafetyNotice",
    "SafetyServicePrivateKey",
    "SafetyServicePublicKey",
    "contact_safety_notice",
    "conversation_policy",
    "decide_contact",
    "decide_group_join",
    "open_safety_copy",
    "seal_safety_copy",
]
