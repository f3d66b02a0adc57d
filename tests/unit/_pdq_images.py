"""Generated test images for PDQ (shapes, gradients, text, noise, composites; never
photos of people) and the transformed copies hash matching must survive or refuse."""

from __future__ import annotations

import io
import random
from collections.abc import Callable

from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageStat

Transform = Callable[[Image.Image], Image.Image]


def scene(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A composite: a gradient background, shapes, a line of text and a noise patch."""
    rng = random.Random(seed)
    width, height = size
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    tint = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    image = Image.blend(image, tint, 0.5)
    draw = ImageDraw.Draw(image)
    for _ in range(14):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        x1, y1 = x0 + rng.randrange(40, 260), y0 + rng.randrange(40, 200)
        colour = tuple(rng.randrange(256) for _ in range(3))
        shape = rng.choice(("rectangle", "ellipse", "line"))
        if shape == "rectangle":
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        elif shape == "ellipse":
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.line((x0, y0, x1, y1), fill=colour, width=rng.randrange(4, 20))
    draw.text((20, height - 40), f"covey test scene {seed}", fill=(255, 255, 255))
    noise = Image.effect_noise((120, 90), 60).convert("RGB")
    image.paste(noise, (rng.randrange(width - 120), rng.randrange(height - 90)))
    return image


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def _crop(fraction: float) -> Transform:
    def crop(image: Image.Image) -> Image.Image:
        dx, dy = round(image.width * fraction), round(image.height * fraction)
        return image.crop((dx, dy, image.width - dx, image.height - dy))
    return crop


def _rotate(degrees: float) -> Transform:
    """Rotated in place; the uncovered corners take the image's mean colour (as a
    re-shot or re-scanned copy would show background, not black)."""

    def rotate(image: Image.Image) -> Image.Image:
        mean = tuple(int(v) for v in ImageStat.Stat(image.convert("RGB")).mean)
        return image.rotate(degrees, resample=Image.Resampling.BILINEAR, fillcolor=mean)
    return rotate


def _recompress(image: Image.Image) -> Image.Image:
    return Image.open(io.BytesIO(jpeg(image, quality=35)))


def _watermark(image: Image.Image) -> Image.Image:
    """Half-transparent text in a corner, as apps and reposters stamp images."""
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    draw.text((image.width - 130, image.height - 24), "shared via app",
              fill=(255, 255, 255, 128))
    return Image.alpha_composite(image.convert("RGBA"), layer).convert("RGB")


# Copies that must still match their original.
MATCHING: dict[str, Transform] = {
    "resized": lambda image: image.resize((image.width // 2, image.height // 2)),
    "upscaled": lambda image: image.resize((image.width * 2, image.height * 2)),
    "jpeg_recompressed": _recompress,
    "cropped_1pct": _crop(0.01),
    "brightened": lambda image: ImageEnhance.Brightness(image).enhance(1.25),
    "watermarked": _watermark,
    "rotated_1deg": _rotate(1.0),
    "mirrored": lambda image: image.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    "flipped": lambda image: image.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
    "rotated_90": lambda image: image.transpose(Image.Transpose.ROTATE_90),
    "rotated_270": lambda image: image.transpose(Image.Transpose.ROTATE_270),
    "blurred": lambda image: image.filter(ImageFilter.GaussianBlur(1)),
}

# Measured and reported in docs/detection.md, not asserted: PDQ is not built for these.
MEASURED: dict[str, Transform] = {
    "cropped_4pct": _crop(0.04),
    "rotated_3deg": _rotate(3.0),
}


def low_contrast(image: Image.Image) -> Image.Image:
    """A copy so flat that PDQ's quality falls under 50 (it must not be matched on)."""
    return ImageEnhance.Contrast(image.filter(ImageFilter.GaussianBlur(12))).enhance(0.01)
