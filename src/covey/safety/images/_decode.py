"""Image bytes to the RGB pixels PDQ hashes, with Pillow, safely and fast.

Large JPEGs are decoded at reduced size (`Image.draft`, DCT scaling, to >= 256 px a
side) and everything is downscaled to at most 512 px a side before hashing, as PDQ's
reference does: PDQ reduces every image to 64x64 luminance, so more pixels only cost time.
Decompression bombs and files that are not images are refused with a clear error before
any pixel is decoded."""

from __future__ import annotations

import io
import warnings

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps, UnidentifiedImageError

from covey.errors import InvalidInput

HASH_SIDE = 512  # PDQ's reference downsamples to this before hashing
# JPEGs are decoded at the smallest DCT scale that keeps both sides >= 256 px: PDQ reduces
# to 64x64 anyway, the hash moves ~2 bits against a 512 px decode, and decoding is ~3x
# faster (docs/detection.md#hashing).
DRAFT_SIDE = 256
MAX_PIXELS = 64_000_000  # refused above this (a decompression bomb or absurd image)
MAX_BYTES = 100 * 1024 * 1024  # the relay's blob limit


class ImageRejected(InvalidInput):
    """Bytes that are not an image we can hash (or that would cost too much to decode)."""

    code = "image_rejected"


def decode_for_hashing(data: bytes, *, max_pixels: int = MAX_PIXELS) -> npt.NDArray[np.uint8]:
    """An HxWx3 uint8 array, at most `HASH_SIDE` px a side, of the image in `data`."""
    if len(data) > MAX_BYTES:
        raise ImageRejected(f"image larger than {MAX_BYTES} bytes")
    try:
        with warnings.catch_warnings():
            # Our own pixel limit below replaces Pillow's warning-then-error heuristics.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width <= 0 or height <= 0:
                raise ImageRejected("image has no pixels")
            if width * height > max_pixels:
                raise ImageRejected(
                    f"image of {width}x{height} pixels is over the {max_pixels} pixel limit "
                    "(a decompression bomb?)")
            if image.format == "JPEG" and min(width, height) > 2 * DRAFT_SIDE:
                image.draft("RGB", (DRAFT_SIDE, DRAFT_SIDE))  # decodes at 1/2, 1/4 or 1/8
            picture: Image.Image = ImageOps.exif_transpose(image)  # what a viewer shows
            if picture.mode != "RGB":
                picture = picture.convert("RGB")
            if max(picture.size) > HASH_SIDE:
                picture.thumbnail((HASH_SIDE, HASH_SIDE), Image.Resampling.BILINEAR)
            return np.asarray(picture, dtype=np.uint8)
    except ImageRejected:
        raise
    except UnidentifiedImageError as exc:
        raise ImageRejected("not an image (or a format Pillow cannot read)") from exc
    except Image.DecompressionBombError as exc:
        raise ImageRejected("image refused as a decompression bomb") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageRejected(f"image could not be decoded: {exc}") from exc
