"""Driving the real `covey` entry point (the console script in this virtualenv) from
tests: interactive `covey chat` through its stdin and stdout, and one-shot commands."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

COVEY = str(Path(sys.executable).parent / "covey")
PASSPHRASE = "chat passphrase"


def cli_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "COVEY_PASSPHRASE": PASSPHRASE, "COLUMNS": "200", **extra}


async def start(*args: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    # A new session has no controlling terminal, so hidden prompts read stdin.
    return await asyncio.create_subprocess_exec(
        COVEY, *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env=env or cli_env(), start_new_session=True)


async def run(*args: str, env: dict[str, str] | None = None, stdin: bytes = b"",
              within_s: float = 60) -> tuple[int, str]:
    """Run one command to its end: (exit code, stdout and stderr)."""
    process = await start(*args, env=env)
    out, _ = await asyncio.wait_for(process.communicate(stdin), within_s)
    return process.returncode or 0, out.decode()


async def read_until(process: asyncio.subprocess.Process, needle: str,
                     within_s: float = 30) -> str:
    assert process.stdout is not None
    seen = ""
    try:
        async with asyncio.timeout(within_s):
            while needle not in seen:
                line = await process.stdout.readline()
                if not line:
                    break
                seen += line.decode()
    except TimeoutError:
        raise AssertionError(f"{needle!r} not printed within {within_s} s:\n{seen}") from None
    assert needle in seen, seen
    return seen


async def type_line(process: asyncio.subprocess.Process, line: str) -> None:
    assert process.stdin is not None
    process.stdin.write(line.encode() + b"\n")
    await process.stdin.drain()


async def quit_chat(process: asyncio.subprocess.Process) -> None:
    await type_line(process, "/quit")
    assert await asyncio.wait_for(process.wait(), 20) == 0
