"""Test images made with Pillow: a phone photo with GPS EXIF, PNG, WebP, HEIC, bombs, fakes."""

from __future__ import annotations

import io
import os

from PIL import ExifTags, Image

GPS = {
    ExifTags.GPS.GPSLatitudeRef: "N",
    ExifTags.GPS.GPSLatitude: (41.0, 55.0, 12.5),
    ExifTags.GPS.GPSLongitudeRef: "W",
    ExifTags.GPS.GPSLongitude: (87.0, 38.0, 45.0),
}


def noisy(size: tuple[int, int], seed: int = 1) -> Image.Image:
    """Return an RGB image with some texture (a flat colour would compress to nothing)."""
    w, h = size
    base = Image.linear_gradient("L").resize((w, h))
    small = (max(1, w // 4), max(1, h // 4))
    noise = Image.frombytes("L", small, os.urandom(small[0] * small[1])).resize((w, h))
    return Image.merge("RGB", (base, noise, base.rotate(90 * seed).resize((w, h))))


def jpeg_with_gps(size: tuple[int, int] = (4000, 3000), *, orientation: int = 1) -> bytes:
    """Return a JPEG like a phone's: EXIF with GPS position, camera model and orientation."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Phone"
    exif[ExifTags.Base.Model] = "Model 15"
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.GPSInfo] = GPS
    out = io.BytesIO()
    noisy(size).save(out, "JPEG", quality=92, exif=exif.tobytes())
    return out.getvalue()


def encoded(fmt: str, size: tuple[int, int] = (800, 600), **kw: object) -> bytes:
    """Return an image in a format (PNG, WEBP, HEIF, JPEG)."""
    out = io.BytesIO()
    image = noisy(size)
    if fmt == "PNG":
        image = image.convert("RGBA")
    image.save(out, fmt, **kw)
    return out.getvalue()


def bomb(side: int = 16000) -> bytes:
    """Return a small PNG that decodes to side x side pixels (a decompression bomb)."""
    out = io.BytesIO()
    Image.new("1", (side, side), 0).save(out, "PNG", optimize=True)
    return out.getvalue()


def executable() -> bytes:
    """Return a real program's bytes (to be uploaded under a photo's name)."""
    with open("/bin/true", "rb") as fh:
        return fh.read()


def big_file(megabytes: int) -> bytes:
    """Return a file of this many MB that starts like a JPEG."""
    return b"\xff\xd8\xff\xe0" + os.urandom(1024) * (megabytes * 1024 - 1) + b"\x00" * 1020


def has_exif(data: bytes) -> bool:
    """Return True when an image carries any EXIF (GPS or otherwise)."""
    with Image.open(io.BytesIO(data)) as image:
        return bool(image.getexif()) or "exif" in image.info
