"""What a photo says about itself, read from the EXIF already parsed while decoding (no second read of the
file): date taken, GPS position, camera make and model, pixel size (as displayed, after orientation) and the
EXIF orientation. The date is EXIF's ``DateTimeOriginal`` (else ``DateTimeDigitized``, else ``DateTime``),
local camera time as ``YYYY-MM-DDTHH:MM:SS``; a photo without one takes its file's mtime (local time), and
``taken_from`` says which (``exif`` or ``mtime``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime

from PIL import Image

_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_DATE_TAGS = ((_EXIF_IFD, 0x9003), (_EXIF_IFD, 0x9004), (None, 0x0132))


@dataclass(frozen=True)
class PhotoInfo:
    taken: str | None = None  # YYYY-MM-DDTHH:MM:SS, camera local time
    taken_from: str | None = None  # "exif" or "mtime"
    lat: float | None = None
    lon: float | None = None
    make: str | None = None
    model: str | None = None
    width: int | None = None
    height: int | None = None
    orientation: int | None = None

    def with_mtime(self, mtime: float) -> PhotoInfo:
        """This info, dated by the file's ``mtime`` when EXIF gave no date."""
        if self.taken is not None:
            return self
        stamp = datetime.fromtimestamp(mtime).replace(microsecond=0).isoformat()
        return replace(self, taken=stamp, taken_from="mtime")

    @property
    def camera(self) -> str:
        return " ".join(p for p in (self.make, self.model) if p)


def photo_info(image: Image.Image) -> PhotoInfo:
    """The metadata of an opened (not yet transposed) image; missing or malformed tags are left None."""
    try:
        exif = image.getexif()
    except Exception:  # a malformed EXIF block is no reason to refuse the pixels
        exif = Image.Exif()
    orientation = _int(exif.get(0x0112)) or 1
    width, height = image.size
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    taken = next((d for d in (_date(_tag(exif, ifd, tag)) for ifd, tag in _DATE_TAGS) if d), None)
    lat, lon = _gps(exif)
    return PhotoInfo(
        taken=taken,
        taken_from="exif" if taken else None,
        lat=lat,
        lon=lon,
        make=_text(exif.get(0x010F)),
        model=_text(exif.get(0x0110)),
        width=width,
        height=height,
        orientation=orientation,
    )


def _tag(exif: Image.Exif, ifd: int | None, tag: int):
    try:
        return exif.get(tag) if ifd is None else exif.get_ifd(ifd).get(tag)
    except Exception:
        return None


def _date(value) -> str | None:
    text = _text(value)
    if not text:
        return None
    try:
        return datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S").isoformat()
    except ValueError:
        return None


def _gps(exif: Image.Exif) -> tuple[float | None, float | None]:
    try:
        gps = exif.get_ifd(_GPS_IFD)
        lat, lon = _degrees(gps.get(2), gps.get(1), "S"), _degrees(gps.get(4), gps.get(3), "W")
    except Exception:
        return None, None
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None, None
    return lat, lon


def _degrees(dms, ref, negative: str) -> float | None:
    if not dms or len(dms) != 3:
        return None
    value = float(dms[0]) + float(dms[1]) / 60 + float(dms[2]) / 3600
    if not math.isfinite(value):
        return None
    sign = -1 if _text(ref) == negative else 1
    return round(sign * value, 7)


def _text(value) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    value = value.replace("\x00", "").strip()
    return value or None


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
