"""Photo formats beyond Pillow's own: HEIC/HEIF through ``pillow-heif`` (its opener registered on first use) and
camera RAW through ``rawpy`` (LibRaw). AVIF is Pillow's own (Pillow >= 11.3 reads it). Both packages are the
``photos`` extra; a file that needs a missing one is refused in one line naming the extra.

A RAW file is recognised by its suffix (TIFF-based RAWs such as DNG, NEF or ARW would otherwise open in Pillow
as their small IFD0 thumbnail). It is decoded from the largest embedded preview JPEG LibRaw finds (fast: no
demosaicing; the camera's own rendering), rotated by the RAW's orientation; a file without a JPEG preview is
demosaiced by LibRaw (camera white balance, sRGB)."""

from __future__ import annotations

import functools
import io
from pathlib import Path

from PIL import Image

from clipforge.errors import InputError
from clipforge.runtime.image_policy import ImagePolicy

HEIF_SUFFIXES = frozenset({".heic", ".heif", ".hif"})
AVIF_SUFFIXES = frozenset({".avif"})
RAW_SUFFIXES = frozenset(
    {".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".orf", ".rw2", ".raf", ".pef"}
    | {".srw", ".x3f", ".3fr", ".iiq", ".rwl", ".erf", ".kdc", ".dcr", ".mrw", ".mos"}
)
PHOTO_SUFFIXES = HEIF_SUFFIXES | AVIF_SUFFIXES | RAW_SUFFIXES
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")
# LibRaw's flip -> the EXIF orientation that undoes it
_FLIP_TO_ORIENTATION = {0: 1, 3: 3, 5: 8, 6: 6}


def is_raw(name: str | None) -> bool:
    return bool(name) and Path(name).suffix.lower() in RAW_SUFFIXES


@functools.cache
def register_heif() -> bool:
    """Register pillow-heif's HEIF opener with Pillow (once; registering twice from two threads is harmless);
    False when pillow-heif is not installed."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def looks_heif(head: bytes, name: str | None) -> bool:
    """Whether bytes starting with ``head`` (or a file called ``name``) are HEIF (``ftyp`` box with a HEIF brand)."""
    return (head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS) or (
        bool(name) and Path(name).suffix.lower() in HEIF_SUFFIXES
    )


def missing_heif(name: str) -> InputError:
    return InputError(
        f"image {name} is HEIC/HEIF, which needs pillow-heif; install clipforge[photos] (pip install pillow-heif)"
    )


def open_raw(data: bytes, name: str, policy: ImagePolicy) -> Image.Image:
    """A camera RAW file's picture: its embedded preview JPEG, else LibRaw's demosaiced image, upright (EXIF
    orientation 1 in the result; the RAW's own orientation applied)."""
    try:
        import rawpy
    except ImportError:
        raise InputError(
            f"image {name} is a camera RAW file, which needs rawpy; install clipforge[photos] (pip install rawpy)"
        ) from None
    with rawpy.imread(io.BytesIO(data)) as raw:
        policy.check_size(raw.sizes.width, raw.sizes.height, name)
        image = _preview(raw, rawpy)
        if image is None:
            return Image.fromarray(raw.postprocess(use_camera_wb=True))  # LibRaw applies the flip itself
        orientation = _FLIP_TO_ORIENTATION.get(raw.sizes.flip, 1)
    policy.check_size(image.width, image.height, name)
    image.load()
    exif = image.getexif()
    if exif.get(0x0112, 1) == 1 and orientation != 1:
        exif[0x0112] = orientation  # the preview JPEG rarely carries the camera's orientation; the RAW does
    return image


def _preview(raw, rawpy) -> Image.Image | None:
    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
        return None
    if thumb.format == rawpy.ThumbFormat.JPEG:
        return Image.open(io.BytesIO(thumb.data))
    return Image.fromarray(thumb.data)
