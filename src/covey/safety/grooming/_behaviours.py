"""The fixed vocabulary: the grooming behaviours the scorer looks for and the actions it maps
a conversation's score to. Lexicons, weights and notices are keyed by these names."""

from __future__ import annotations

from enum import StrEnum


class Behaviour(StrEnum):
    """A documented grooming behaviour (O'Connell's stages, Olson's luring communication)."""

    OFF_PLATFORM = "off_platform"  # move to another app, phone number, handle, link
    SECRECY = "secrecy"  # keep it secret, delete the messages
    ISOLATION = "isolation"  # friends and family don't understand you, only I do
    AGE_PROBE = "age_probe"  # how old are you, what grade
    LOCATION_PROBE = "location_probe"  # where do you live, which school
    SUPERVISION_PROBE = "supervision_probe"  # alone, parents home, who sees your screen
    PHOTO_REQUEST = "photo_request"  # send a picture, video call, camera on
    GIFTS = "gifts"  # presents, money, game currency, gift cards
    MEET_REQUEST = "meet_request"  # meet up, I'll pick you up
    FLATTERY = "flattery"  # compliments, "mature for your age", relationship talk
    AGE_DECEPTION = "age_deception"  # "I'm 15 too"
    PRESSURE = "pressure"  # insistence, guilt, threats


class Action(StrEnum):
    """What a conversation's score calls for, in increasing order of weight."""

    NONE = "none"
    NOTICE = "notice"  # the child's client shows a plain-language safety notice
    GUARDIAN = "guardian"  # also an alert to linked guardians: the behaviour only
    REPORT = "report"  # also a moderator report with the verified evidence

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Action.NONE: 0, Action.NOTICE: 1, Action.GUARDIAN: 2, Action.REPORT: 3}


class Band(StrEnum):
    """A participant's age band as the scorer sees it."""

    ADULT = "16+"
    UNDER_16 = "under-16"
    UNVERIFIED = "unverified"
