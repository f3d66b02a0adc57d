"""Words for the codes the console shows: categories, age bands, priorities and statuses
(the stored values stay codes; people read these)."""

from __future__ import annotations

CATEGORIES = {
    "child_sexual_exploitation_imagery": "Child sexual exploitation imagery",
    "grooming_or_enticement": "Grooming or enticement",
    "sextortion": "Sextortion",
    "harassment": "Harassment",
    "spam": "Spam",
    "other": "Other",
}
BANDS = {"16+": "16 or over", "under-16": "under 16", "unverified": "unverified"}
# Stored priority 3 is the most urgent; it is shown as P0.
PRIORITIES = {3: "P0 · child safety, reported by an under-16",
              2: "P1 · child safety",
              1: "P2 · reported by an under-16",
              0: "P3 · other"}
STATUSES = {"open": "open", "dismissed": "dismissed", "warned": "sender warned",
            "suspended": "sender suspended", "escalated": "escalated"}
ACTIONS = {"pending": "pending", **STATUSES}
POLICY_MODES = {"safeguarded": "safeguarded", "on-device": "on-device",
                "e2ee-only": "E2EE only"}


def category(code: str) -> str:
    return CATEGORIES.get(code, code.replace("_", " ").capitalize())


def band(code: str) -> str:
    return BANDS.get(code, code)


def status(code: str) -> str:
    return STATUSES.get(code, code)


def dimension_label(dimension: str, code: str) -> str:
    """A transparency table's row name in words."""
    if dimension == "by_category":
        return category(code)
    if dimension == "by_reporter_band":
        return band(code)
    if dimension == "by_action":
        return ACTIONS.get(code, code)
    if dimension == "by_policy_mode":
        return POLICY_MODES.get(code, code)
    return code
