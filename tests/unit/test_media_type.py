"""Attachment media types: file signatures first, then the name, else octet-stream."""

from __future__ import annotations

import pytest

from covey.client import media_type


@pytest.mark.parametrize(("data", "name", "expected"), [
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 8, "photo.bin", "image/png"),
    (b"\xff\xd8\xff\xe0" + b"\0" * 8, "", "image/jpeg"),
    (b"GIF89a" + b"\0" * 8, "x", "image/gif"),
    (b"RIFF\x10\0\0\0WEBPVP8 ", "x", "image/webp"),
    (b"%PDF-1.7\n", "x", "application/pdf"),
    (b"plain words", "notes.txt", "text/plain"),
    (b"plain words", "notes", "application/octet-stream"),
    (b"", "", "application/octet-stream"),
])
def test_media_type(data: bytes, name: str, expected: str) -> None:
    assert media_type(data, name) == expected
