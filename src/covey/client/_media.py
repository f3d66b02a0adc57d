"""An attachment's media type, from its first bytes (common images, PDF) or else its file
name, so a recipient and the moderation console can preview what it is."""

from __future__ import annotations

import mimetypes

OCTET_STREAM = "application/octet-stream"

# File signatures checked before the name: a name can lie, and an image sent as
# `photo.bin` should still preview.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
)


def media_type(data: bytes, name: str = "") -> str:
    """The media type of `data`: its signature, else a guess from `name`, else
    application/octet-stream."""
    for signature, kind in _SIGNATURES:
        if data.startswith(signature):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed or OCTET_STREAM
