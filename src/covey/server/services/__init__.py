"""Services: the relay's logic between the HTTP/WebSocket layer and storage."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from covey.protocol.secrets import ServerFrankingKey
from covey.server.fanout import Fanout
from covey.server.services._common import Principal, load_or_create_secret_file
from covey.server.services.accounts import AccountService, DeviceDirectory
from covey.server.services.age import AgeService
from covey.server.services.auth import AuthService
from covey.server.services.blobs import BlobService
from covey.server.services.contacts import ContactService
from covey.server.services.groups import GroupService
from covey.server.services.guardians import GuardianService
from covey.server.services.image_matching import ImageMatchService, matching_service
from covey.server.services.keys import KeyService
from covey.server.services.messages import MessageService
from covey.server.services.policy import PolicyService
from covey.server.services.safety_copies import SafetyCopyService
from covey.server.services.safety_events import SafetyEvents
from covey.server.services.safety_notices import SafetyNoticeService
from covey.server.services.scans import ScanQueue
from covey.server.storage.age import AgeStorage
from covey.server.storage.detector_states import DetectorStateStore
from covey.server.storage.repository import Repository
from covey.server.storage.safety_repo import SafetyRepository
from covey.server.storage.scan_jobs import ScanJobStore
from covey.settings import Settings


@dataclass
class Services:
    settings: Settings
    repo: Repository
    fanout: Fanout
    accounts: AccountService
    auth: AuthService
    keys: KeyService
    groups: GroupService
    messages: MessageService
    blobs: BlobService
    age: AgeService
    events: SafetyEvents
    guardians: GuardianService
    policy: PolicyService
    safety_copies: SafetyCopyService
    scans: ScanQueue
    contacts: ContactService
    images: ImageMatchService


def load_or_create_server_key(path: Path) -> ServerFrankingKey:
    """The 32-byte franking key; created 0600 on first start, never rewritten."""
    return ServerFrankingKey(load_or_create_secret_file(path, lambda: os.urandom(32)))


def build_services(settings: Settings, repo: Repository, fanout: Fanout) -> Services:
    server_key = load_or_create_server_key(settings.resolved_server_key_file())
    directory = DeviceDirectory(repo)
    events = SafetyEvents()
    age = AgeService(settings, AgeStorage(repo), directory, fanout)
    policy = PolicyService(settings, SafetyRepository(repo), age)
    events.subscribe(policy.on_event)
    age.on_proven(policy.on_band_proven)
    blobs = BlobService(settings, repo)

    async def band_of(user_id: str) -> str:
        return (await policy.band(user_id)).value

    scans = ScanQueue(settings, ScanJobStore(repo), policy.detectors.current,
                      lambda: policy.safety_key, server_key, events,
                      states=DetectorStateStore(repo), band_of=band_of,
                      notices=SafetyNoticeService(settings, directory, fanout), blobs=blobs)
    copies = SafetyCopyService(settings, policy.store, policy, scans)
    groups = GroupService(repo, directory, fanout, policy)
    images = matching_service(settings, repo, blobs, age, scans)
    images.events = events
    messages = MessageService(settings, repo, directory, groups, fanout, server_key, policy,
                              copies)
    messages.images = images
    return Services(
        settings=settings, repo=repo, fanout=fanout,
        accounts=AccountService(settings, repo, directory, policy.phrases, fanout,
                                policy.store.contacts_of),
        auth=AuthService(settings, repo),
        keys=KeyService(settings, repo, directory, fanout),
        groups=groups,
        messages=messages,
        blobs=blobs,
        age=age,
        events=events,
        policy=policy,
        safety_copies=copies,
        scans=scans,
        contacts=ContactService(repo, policy, events, directory, fanout),
        guardians=GuardianService(repo, age, directory, fanout, events, policy),
        images=images,
    )


__all__ = ["Principal", "Services", "build_services", "load_or_create_server_key"]
