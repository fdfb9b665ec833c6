"""Check an uploaded photo by its content and re-encode it: no metadata, upright, at most N px.

Pillow decides what a file is from its bytes, never from its name or declared type. What comes
out is always a fresh JPEG: EXIF (GPS included), XMP, ICC comments and anything appended to the
file are gone, because only the decoded pixels are written again.
"""

from __future__ import annotations

import hashlib
import io
import logging
import warnings
from dataclasses import dataclass
from typing import IO

from PIL import Image, ImageOps, UnidentifiedImageError

logger = logging.getLogger(__name__)

try:  # HEIC/HEIF from iPhones, when pillow-heif is installed (it is a dependency)
    from pillow_heif import register_heif_opener

    register_heif_opener()
    HEIC_SUPPORTED = True
except ImportError:  # pragma: no cover - exercised only without the package
    HEIC_SUPPORTED = False

ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "HEIF"})
ACCEPT_ATTRIBUTE = "image/jpeg,image/png,image/webp,image/heic,image/heif,.heic,.heif"
THUMB_SIDE = 320
JPEG_QUALITY = 85

NOT_A_PHOTO = "This file isn't a photo we can read. Choose a JPEG, PNG, HEIC or WebP photo."
EMPTY = "This file is empty. Choose the photo again."
BROKEN = "This photo seems damaged and can't be opened. Try taking or saving it again."
HEIC_OFF = "We can't read iPhone HEIC photos here yet. Choose a JPEG, PNG or WebP photo."


class PhotoRefused(ValueError):
    """A file that is not a photo we take; the message is for the homeowner."""


@dataclass(frozen=True)
class Processed:
    """A photo ready to store: the re-encoded JPEG, its thumbnail, and what we know of it."""

    data: bytes
    thumb: bytes
    width: int
    height: int
    sha256: str
    source_format: str


def too_big_message(max_bytes: int) -> str:
    """Return the message for a file over the size limit."""
    return f"This photo is larger than {max_bytes // (1024 * 1024)} MB. Choose a smaller one."


def too_many_pixels_message() -> str:
    """Return the message for an image with too many pixels (a decompression bomb)."""
    return (
        "This image is too large to open (too many pixels). "
        "Choose a normal photo from your phone or camera."
    )


def read_limited(stream: IO[bytes], max_bytes: int) -> bytes:
    """Read at most max_bytes + 1 bytes of an upload (one more tells that it is too big)."""
    return stream.read(max_bytes + 1)


def process(data: bytes, *, max_bytes: int, max_side: int, max_pixels: int) -> Processed:
    """Check one upload by its content and return it re-encoded as a clean JPEG.

    Raises:
        PhotoRefused: with a message for the homeowner (empty, too big, not a photo, a
            decompression bomb, damaged).
    """
    if not data:
        raise PhotoRefused(EMPTY)
    if len(data) > max_bytes:
        raise PhotoRefused(too_big_message(max_bytes))
    with warnings.catch_warnings():
        # Pillow warns past MAX_IMAGE_PIXELS and refuses past twice that: both are refusals here.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image, source_format = _open(data, max_pixels)
            image = _decode(image, source_format, max_side)
        except PhotoRefused:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise PhotoRefused(too_many_pixels_message()) from None
        except UnidentifiedImageError:
            raise PhotoRefused(NOT_A_PHOTO) from None
        except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
            logger.info("Photo refused as damaged: %s", exc.__class__.__name__)
            raise PhotoRefused(BROKEN) from None
    out = _encode(image)
    thumb = image.copy()
    thumb.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
    return Processed(
        data=out,
        thumb=_encode(thumb),
        width=image.width,
        height=image.height,
        sha256=hashlib.sha256(out).hexdigest(),
        source_format=source_format,
    )


def _open(data: bytes, max_pixels: int) -> tuple[Image.Image, str]:
    """Open and verify the file's header, refusing formats and sizes we don't take."""
    with Image.open(io.BytesIO(data)) as probe:
        fmt = probe.format or ""
        width, height = probe.size
        probe.verify()  # structure and checksums (PNG CRCs), without decoding the pixels
    if fmt not in ACCEPTED_FORMATS:
        if fmt == "" and not HEIC_SUPPORTED and data[4:12] in (b"ftypheic", b"ftypheix"):
            raise PhotoRefused(HEIC_OFF)
        raise PhotoRefused(NOT_A_PHOTO)
    if width <= 0 or height <= 0:
        raise PhotoRefused(BROKEN)
    if width * height > max_pixels:
        raise PhotoRefused(too_many_pixels_message())
    # verify() leaves the image unusable: open it again to decode it.
    return Image.open(io.BytesIO(data)), fmt


def _decode(image: Image.Image, fmt: str, max_side: int) -> Image.Image:
    """Decode (a JPEG at a reduced scale when it is much larger), turn it upright, downscale."""
    if fmt == "JPEG":
        # The DCT decoder can decode at 1/2, 1/4, 1/8 scale: far less memory for big photos.
        image.draft("RGB", (max_side, max_side))
    image.load()
    if max(image.size) > max_side:  # first, in place: the turn below then copies a small image
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    upright = ImageOps.exif_transpose(image)  # applies the EXIF orientation, drops the tag
    return _flatten(upright) if upright.mode not in ("RGB", "L") else upright


def _flatten(image: Image.Image) -> Image.Image:
    """Return an RGB image; transparency goes onto white, as a photo has no transparency."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _encode(image: Image.Image) -> bytes:
    """Write the pixels alone as a JPEG: no EXIF, no ICC profile, no comment, nothing appended."""
    out = io.BytesIO()
    clean = image.convert("RGB") if image.mode != "RGB" else image
    clean.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True)
    return out.getvalue()
