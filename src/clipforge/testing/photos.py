"""Photo files written locally for tests: JPEGs with EXIF (date taken, GPS, camera, orientation), HEIC through
pillow-heif, and DNG camera RAW files (a 16-bit Bayer mosaic LibRaw demosaics, with or without an embedded JPEG
preview) written by a small TIFF writer here, since nothing on the package registry writes DNG."""

from __future__ import annotations

import io
import os
import struct
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from clipforge.runtime.photo_info import PhotoInfo

# TIFF field types
_SHORT, _LONG, _RATIONAL, _ASCII, _BYTE, _SRATIONAL = 3, 4, 5, 2, 1, 10
# XYZ (D65) -> linear sRGB: as a DNG ColorMatrix it makes the camera's RGB linear sRGB
XYZ_TO_LINEAR_SRGB = [3.2406, -1.5372, -0.4986, -0.9689, 1.8758, 0.0415, 0.0557, -0.2040, 1.0570]
_SIZES = {_BYTE: 1, _ASCII: 1, _SHORT: 2, _LONG: 4, _RATIONAL: 8, _SRATIONAL: 8}


def photo_exif(
    taken: datetime | None = None,
    gps: tuple[float, float] | None = None,
    camera: tuple[str, str] | None = None,
    orientation: int | None = None,
) -> Image.Exif:
    """An EXIF block as a camera writes it: DateTimeOriginal, GPS position, Make/Model, Orientation."""
    exif = Image.Exif()
    if camera:
        exif[0x010F], exif[0x0110] = camera
    if orientation:
        exif[0x0112] = orientation
    if taken:
        exif.get_ifd(0x8769)[0x9003] = taken.strftime("%Y:%m:%d %H:%M:%S")
    if gps:
        ifd = exif.get_ifd(0x8825)
        ifd[1], ifd[2] = ("N" if gps[0] >= 0 else "S"), _dms(abs(gps[0]))
        ifd[3], ifd[4] = ("E" if gps[1] >= 0 else "W"), _dms(abs(gps[1]))
    return exif


PLACES = {"lisbon": (38.7223, -9.1393), "porto": (41.1579, -8.6291), "paris": (48.8566, 2.3522), None: None}
CAMERAS = [("Canon", "Canon EOS 5D Mark IV"), ("Apple", "iPhone 12"), ("NIKON CORPORATION", "NIKON D750"), None]
GEO_LABELS = ["red circle", "blue square", "green cross", "yellow triangle"]


def geo_library(root: Path, shapes: Path, per_label: int = 5) -> dict[str, PhotoInfo]:
    """JPEGs of the shapes under ``shapes`` (``<label>/<i>.png|jpg``) with real EXIF (date taken, GPS, camera,
    orientation), in two folders; every fifth has no EXIF date (its mtime is set instead). Returns path -> the
    metadata an index should hold for it."""
    expected, start = {}, datetime(2018, 3, 1, 9, 30, 0)
    for n, (label, i) in enumerate((label, i) for i in range(per_label) for label in GEO_LABELS):
        source = Image.open(next((shapes / label).glob(f"{i}.*"))).convert("RGB")
        folder = root / ("trip-a" if n % 2 else "trip-b")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{label.replace(' ', '-')}-{i}.jpg"
        taken = None if n % 5 == 4 else start + timedelta(days=47 * n, hours=n)
        place, camera = list(PLACES)[n % 4], CAMERAS[(n // 2) % 4]
        orientation = 6 if n % 3 == 0 else 1
        stored = source.transpose(Image.Transpose.ROTATE_90) if orientation == 6 else source
        write_jpeg(path, stored, taken=taken, gps=PLACES[place], camera=camera, orientation=orientation)
        mtime = datetime(2021, 6, 1, 12, 0, 0).timestamp() + n * 3600
        os.utime(path, (mtime, mtime))
        lat, lon = PLACES[place] or (None, None)
        expected[str(path)] = PhotoInfo(
            taken=(taken or datetime.fromtimestamp(mtime)).isoformat(),
            taken_from="exif" if taken else "mtime",
            lat=lat,
            lon=lon,
            make=camera[0] if camera else None,
            model=camera[1] if camera else None,
            width=source.width,
            height=source.height,
            orientation=orientation,
        )
    return expected


def _dms(value: float) -> tuple[float, float, float]:
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = round((value - degrees - minutes / 60) * 3600, 4)
    return (float(degrees), float(minutes), seconds)


def write_jpeg(path: Path, image: Image.Image, **exif) -> Path:
    image.convert("RGB").save(path, "JPEG", quality=95, exif=photo_exif(**exif))
    return path


def write_heic(path: Path, image: Image.Image, **exif) -> Path:
    """A HEIC file (pillow-heif encodes it) holding ``image`` and its EXIF."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    image.convert("RGB").save(path, "HEIF", quality=95, exif=photo_exif(**exif).tobytes())
    return path


def write_dng(path: Path, image: Image.Image, *, preview: bool = True, make="Clipforge", model="Test DNG") -> Path:
    """A DNG holding ``image`` as an RGGB Bayer mosaic (16-bit, linear, white balance neutral) in a SubIFD,
    and, with ``preview``, the same picture as a baseline JPEG in IFD0 (the embedded preview cameras write)."""
    rgb = np.asarray(image.convert("RGB"), np.float64) / 255.0
    h, w = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
    linear = rgb[:h, :w] ** 2.2  # the mosaic is linear light; LibRaw applies the sRGB curve back
    mosaic = np.empty((h, w), np.uint16)
    mosaic[0::2, 0::2] = linear[0::2, 0::2, 0] * 65535
    mosaic[0::2, 1::2] = linear[0::2, 1::2, 1] * 65535
    mosaic[1::2, 0::2] = linear[1::2, 0::2, 1] * 65535
    mosaic[1::2, 1::2] = linear[1::2, 1::2, 2] * 65535
    raw_tags = [
        (254, _LONG, [0]),
        (256, _LONG, [w]),
        (257, _LONG, [h]),
        (258, _SHORT, [16]),
        (259, _SHORT, [1]),
        (262, _SHORT, [32803]),  # CFA
        (277, _SHORT, [1]),
        (278, _LONG, [h]),
        (284, _SHORT, [1]),
        (33421, _SHORT, [2, 2]),  # CFARepeatPatternDim
        (33422, _BYTE, [0, 1, 1, 2]),  # CFAPattern RGGB
        (50714, _LONG, [0]),  # BlackLevel
        (50717, _LONG, [65535]),  # WhiteLevel
    ]
    common = [
        (271, _ASCII, make),
        (272, _ASCII, model),
        (50706, _BYTE, [1, 4, 0, 0]),  # DNGVersion
        (50708, _ASCII, f"{make} {model}"),  # UniqueCameraModel
        (50721, _SRATIONAL, XYZ_TO_LINEAR_SRGB),  # ColorMatrix1: the "camera" sees linear sRGB
        (50728, _RATIONAL, [1, 1, 1]),  # AsShotNeutral
        (50778, _SHORT, [21]),  # CalibrationIlluminant1 D65
    ]
    blobs = [mosaic.astype("<u2").tobytes()]
    if preview:
        jpeg = io.BytesIO()
        image.convert("RGB").save(jpeg, "JPEG", quality=95)
        blobs.append(jpeg.getvalue())
        ifd0 = [
            (254, _LONG, [1]),  # reduced-resolution image: the preview
            (256, _LONG, [image.width]),
            (257, _LONG, [image.height]),
            (258, _SHORT, [8, 8, 8]),
            (259, _SHORT, [7]),  # JPEG
            (262, _SHORT, [6]),  # YCbCr
            (277, _SHORT, [3]),
            (278, _LONG, [image.height]),
            (284, _SHORT, [1]),
            *common,
        ]
        Path(path).write_bytes(_tiff([(ifd0, 1), (raw_tags, 0)], blobs, subifd=True))
    else:
        Path(path).write_bytes(_tiff([(raw_tags + common, 0)], blobs, subifd=False))
    return Path(path)


def _tiff(ifds: list[tuple[list, int]], blobs: list[bytes], subifd: bool) -> bytes:
    """A little-endian TIFF: ``ifds`` as (tags, index of its strip in ``blobs``); with ``subifd`` the second IFD
    is IFD0's SubIFD (DNG's layout: preview in IFD0, raw data below it), else the IFDs are chained."""
    out = bytearray(b"II*\x00\x00\x00\x00\x00")
    strips = []
    for blob in blobs:
        strips.append(len(out))
        out += blob + (b"\x00" if len(blob) % 2 else b"")
    full = []
    for n, (tags, blob) in enumerate(ifds):
        tags = [*tags, (273, _LONG, [strips[blob]]), (279, _LONG, [len(blobs[blob])])]
        if subifd and n == 0:
            tags.append((330, _LONG, [0]))  # the SubIFD's offset, set once the offsets are known
        full.append(sorted(tags, key=lambda t: t[0]))
    offsets, at = [], len(out)
    for tags in full:  # an IFD's length does not depend on its offset or values
        offsets.append(at)
        at += len(_ifd(tags, 0, 0))
    if subifd:
        full[0] = [(t, k, [offsets[1]]) if t == 330 else (t, k, v) for t, k, v in full[0]]
    for n, tags in enumerate(full):
        chained = offsets[n + 1] if not subifd and n + 1 < len(full) else 0
        out += _ifd(tags, offsets[n], chained)
    out[4:8] = struct.pack("<I", offsets[0])
    return bytes(out)


def _ifd(tags: list, at: int, next_ifd: int) -> bytes:
    """One IFD written at offset ``at``: entries, the next IFD's offset, then the values over 4 bytes."""
    head = bytearray(struct.pack("<H", len(tags)))
    data_at = at + 2 + 12 * len(tags) + 4
    data = bytearray()
    for tag, kind, value in tags:
        raw = _value(kind, value)
        count = len(raw) // _SIZES[kind]
        if len(raw) <= 4:
            head += struct.pack("<HHI", tag, kind, count) + raw.ljust(4, b"\x00")
        else:
            head += struct.pack("<HHII", tag, kind, count, data_at + len(data))
            data += raw + (b"\x00" if len(raw) % 2 else b"")
    return bytes(head + struct.pack("<I", next_ifd) + data)


def _value(kind: int, value) -> bytes:
    if kind == _ASCII:
        return value.encode() + b"\x00"
    if kind in (_RATIONAL, _SRATIONAL):
        fractions = [Fraction(v).limit_denominator(10000) for v in value]
        code = "<ii" if kind == _SRATIONAL else "<II"
        return b"".join(struct.pack(code, f.numerator, f.denominator) for f in fractions)
    code = {_BYTE: "B", _SHORT: "H", _LONG: "I"}[kind]
    return struct.pack(f"<{len(value)}{code}", *value)
