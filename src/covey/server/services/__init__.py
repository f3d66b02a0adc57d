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
from covey.server.services.groups import GroupService
from covey.server.services.keys import KeyService
from covey.server.services.messages import MessageService
from covey.server.storage.age import AgeStorage
from covey.server.storage.repository import Repository
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


def load_or_create_server_key(path: Path) -> ServerFrankingKey:
    """The 32-byte franking key; created 0600 on first start, never rewritten."""
    return ServerFrankingKey(load_or_create_secret_file(path, lambda: os.urandom(32)))


def build_services(settings: Settings, repo: Repository, fanout: Fanout) -> Services:
    server_key = load_or_create_server_key(settings.resolved_server_key_file())
    directory = DeviceDirectory(repo)
    groups = GroupService(repo, directory, fanout)
    return Services(
        settings=settings, repo=repo, fanout=fanout,
        accounts=AccountService(settings, repo, directory),
        auth=AuthService(settings, repo),
        keys=KeyService(settings, repo, directory, fanout),
        groups=groups,
        messages=MessageService(settings, repo, directory, groups, fanout, server_key),
        blobs=BlobService(settings, repo),
        age=AgeService(settings, AgeStorage(repo), directory, fanout),
    )


__all__ = ["Principal", "Services", "build_services", "load_or_create_server_key"]
