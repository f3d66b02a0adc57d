"""`covey detect conversations FILE.jsonl`: score conversations with the grooming scorer and
print the highest action each reached, as JSON lines or a table."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from covey.cli.detect import detect_app
from covey.safety.grooming import Band, LexiconError, Message, Scorer, load_lexicons

_EXAMPLE = ('{"id": "c1", "lang": "en", "participants": {"sam": "unverified", "mia": '
            '"under-16"}, "messages": [{"from": "sam", "text": "add me on snap"}, '
            '{"from": "sam", "text": "dont tell ur parents"}]}')


class InputError(ValueError):
    """One input line that is not a conversation; the message names the line."""


@dataclass(frozen=True)
class Conversation:
    id: Any
    lang: str | None
    participants: dict[str, Band]
    messages: list[Message]


_HELP = ("Score conversations for grooming behaviour, one result per input line.\n\n"
         "Prints, in input order, the highest action each conversation reached as its "
         'messages arrive ("none", "notice", "guardian", "report"), its score and the '
         "signals (behaviour, message index, reason). Conversations without an under-16 "
         'participant are never scanned. Without "lang" the language is detected per '
         "conversation.")


_EPILOG = (f"Example line of FILE.jsonl:\n\n{_EXAMPLE}\n\n"
           "covey detect conversations chats.jsonl --json")


@detect_app.command("conversations", help=_HELP, epilog=_EPILOG)
def conversations(
    file: Annotated[Path, typer.Argument(help="JSON lines, one conversation each ('-': stdin)",
                                         allow_dash=True)],
    as_json: Annotated[bool, typer.Option("--json", help="one JSON line per conversation")]
    = False,
    lexicons: Annotated[Path | None, typer.Option(
        help="an operator directory of lexicon files merged on top of the shipped ones")]
    = None,
) -> None:
    """Score conversations for grooming behaviour, one result per input line."""
    try:
        scorer = Scorer(load_lexicons(lexicons))
        parsed = list(_read(file))
    except (InputError, LexiconError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    results = []
    for conversation in parsed:
        result = scorer.score_conversation(conversation.participants, conversation.messages,
                                           conversation.lang)
        results.append({
            "id": conversation.id, "action": result.action.value, "score": result.score,
            "signals": [{"behaviour": s.behaviour.value, "message_index": s.message_index,
                         "reason": s.reason} for s in result.signals],
        })
    if as_json:
        for line in results:
            sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
        return
    table = Table("id", "action", "score", "behaviours")
    for line in results:
        behaviours = sorted({s["behaviour"] for s in line["signals"]})
        table.add_row(escape(str(line["id"])), line["action"], f"{line['score']:.2f}",
                      ", ".join(behaviours) or "-")
    Console(highlight=False).print(table)


def _read(file: Path) -> Iterator[Conversation]:
    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{file}: no such file") from None
    except UnicodeDecodeError:
        raise InputError(f"{file}: not UTF-8 text") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield _conversation(number, line)


def _conversation(number: int, line: str) -> Conversation:
    where = f"line {number}"
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a JSON object")
    if "id" not in data:
        raise InputError(f"{where}: missing \"id\"")
    lang = data.get("lang")
    if lang is not None and not isinstance(lang, str):
        raise InputError(f"{where}: \"lang\" must be a string")
    people = data.get("participants")
    if not isinstance(people, dict) or not people:
        raise InputError(f"{where}: \"participants\" must be an object of name: band")
    bands = {b.value: b for b in Band}
    participants: dict[str, Band] = {}
    for name, band in people.items():
        if band not in bands:
            raise InputError(f"{where}: participant {name!r} has band {band!r}; "
                             f"expected one of {', '.join(bands)}")
        participants[name] = bands[band]
    raw = data.get("messages")
    if not isinstance(raw, list):
        raise InputError(f"{where}: \"messages\" must be a list")
    messages = []
    for index, message in enumerate(raw):
        if not isinstance(message, dict):
            raise InputError(f"{where}: message {index} must be an object")
        sender, text = message.get("from"), message.get("text")
        if not isinstance(sender, str) or sender not in participants:
            raise InputError(f"{where}: message {index}: \"from\" must name a participant")
        if not isinstance(text, str):
            raise InputError(f"{where}: message {index}: \"text\" must be a string")
        messages.append(Message(sender, text))
    return Conversation(data["id"], lang or None, participants, messages)
