"""An example for the help page of every command whose docstring has none (`covey X
--help` ends with it). A command's own "Example:" line, where it has one, wins: move an
example into the command's docstring when you next edit it."""

from __future__ import annotations

from typing import Any

EXAMPLES = {
    "demo": "covey demo --keep",
    "chat": "covey chat --store alice.db --to bob   (then /help for the slash commands)",
    "whoami": "covey whoami --store alice.db --prove",
    "transparency": "covey transparency --database-url sqlite+aiosqlite:///covey.db --json",
    "admin": "covey admin create-user mod --role moderator --data-dir covey-data",
    "admin create-user": "COVEY_ADMIN_PASSWORD=... covey admin create-user mod --role "
                         "moderator --database-url sqlite+aiosqlite:///covey.db --data-dir "
                         "covey-data",
    "admin disable-user": "covey admin disable-user mod --database-url "
                          "sqlite+aiosqlite:///covey.db",
    "admin enable-user": "covey admin enable-user mod --database-url "
                         "sqlite+aiosqlite:///covey.db",
    "admin export-key": "covey admin export-key --data-dir covey-data --out attestation.pem",
    "audit": "covey audit visibility --mode e2ee-only --catalog-only",
    "audit visibility": "covey audit visibility --database-url sqlite+aiosqlite:///covey.db",
    "evidence": "covey evidence verify evidence-bundle.zip --public-key attestation.pem",
    "evidence verify": "covey evidence verify evidence-bundle.zip --public-key "
                       "attestation.pem",
    "issuer": "covey issuer init --id did:web:school.example --url "
              "https://age.school.example --dir covey-issuer",
    "issuer init": "covey issuer init --id did:web:school.example --url "
                   "https://age.school.example --dir covey-issuer --capacity 1000",
    "issuer serve": "covey issuer serve --dir covey-issuer --port 8480",
    "issuer pending": "covey issuer pending --dir covey-issuer",
    "issuer approve": "covey issuer approve TICKET --birth-date 2011-04-02 --dir "
                      "covey-issuer",
    "issuer reject": "covey issuer reject TICKET --reason \"no record\" --dir covey-issuer",
    "issuer revoke": "covey issuer revoke CREDENTIAL_ID --dir covey-issuer",
    "issuer operator-key": "covey issuer operator-key --out operator.key",
    "issuer publish": "covey issuer publish --dir covey-issuer --out trust-registry.json "
                      "--operator-key operator.key",
    "guardian": "covey guardian link grace --store emma.db",
    "guardian list": "covey guardian list --store emma.db",
    "guardian link": "covey guardian link grace --role guardian --store emma.db",
    "guardian accept": "covey guardian accept gl_LINK_ID --store grace.db",
    "guardian remove": "covey guardian remove gl_LINK_ID --store emma.db",
    "guardian approve-removal": "covey guardian approve-removal gl_LINK_ID --store grace.db",
    "guardian alerts": "covey guardian alerts --store grace.db --unread",
    "contacts": "covey contacts find bob --store alice.db",
    "contacts list": "covey contacts list --store alice.db",
    "contacts find": "covey contacts find bob --store alice.db",
    "contacts request": "covey contacts request bob --store alice.db",
    "contacts requests": "covey contacts requests --store bob.db",
    "contacts accept": "covey contacts accept cr_REQUEST_ID --store bob.db",
    "contacts decline": "covey contacts decline cr_REQUEST_ID --store bob.db",
    "contacts cancel": "covey contacts cancel cr_REQUEST_ID --store alice.db",
    "contacts remove": "covey contacts remove bob --store alice.db",
    "contacts block": "covey contacts block mallory --store alice.db",
    "contacts unblock": "covey contacts unblock mallory --store alice.db",
    "contacts mute": "covey contacts mute bob --store alice.db",
    "contacts blocked": "covey contacts blocked --store alice.db",
    "age": "covey age request --store alice.db --issuer http://127.0.0.1:8471 --evidence "
           "student_id=S-1",
    "detect": "covey detect images --hash-list known.txt ./inbox/ --json",
}


def _has_example(info: Any) -> bool:
    text = (getattr(info, "help", None) or "") + (getattr(info, "epilog", None) or "")
    callback = getattr(info, "callback", None)
    text += (getattr(callback, "__doc__", None) or "") if callback is not None else ""
    return "Example" in text


def _name(info: Any) -> str:
    if info.name:
        return str(info.name)
    return str(info.callback.__name__).replace("_", "-")


def add_examples(typer_app: Any, prefix: str = "") -> None:
    """Give each registered command and group of `typer_app` without an example the one
    in EXAMPLES, as its help page's epilog."""
    for command in typer_app.registered_commands:
        path = f"{prefix}{_name(command)}"
        if not _has_example(command) and path in EXAMPLES:
            command.epilog = f"Example: {EXAMPLES[path]}"
    for group in typer_app.registered_groups:
        sub = group.typer_instance
        name = group.name or sub.info.name
        path = f"{prefix}{name}"
        if not (_has_example(group) or _has_example(sub.info)) and path in EXAMPLES:
            sub.info.epilog = f"Example: {EXAMPLES[path]}"
        add_examples(sub, f"{path} ")
