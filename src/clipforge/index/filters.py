"""``SearchFilter``: which photos a search may return (date taken, folder, camera, distance from a place) and in
which order (best score first, or newest first), resolved by each back-end in SQL on the photo metadata columns
(schema version 2), then scored exactly on the rows that pass.

- ``after`` / ``before``: ``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD`` or an ISO date-time; both ends are inclusive of the
  period named (``before="2019-12-31"`` keeps the whole of that day), compared with the date taken (EXIF, else
  the file's mtime: ``taken_from`` says which).
- ``folder``: rows whose file lies under this folder (resolved to an absolute path).
- ``camera``: a case-insensitive substring of "make model" (``"iphone"``, ``"canon eos"``).
- ``near``: (lat, lon, km): rows with a GPS position within ``km`` kilometres (haversine on a sphere of radius
  6371.0088 km, the mean Earth radius); rows without one never match.
- ``sort``: ``"score"`` (default) or ``"date"``: the ``k`` best matches, shown newest first.

Rows without metadata (indexed before schema version 2 and not re-indexed since) match only a filter on
``folder``. Errors name the parameter (``after=...``) so the CLI and the API can name their flag or field."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np

from clipforge._fspath import to_db
from clipforge.errors import InputError

EARTH_KM = 6371.0088
DEFAULT_NEAR_KM = 25.0
SORTS = ("score", "date")
_YEAR, _MONTH = re.compile(r"^\d{4}$"), re.compile(r"^\d{4}-\d{2}$")


class FilterError(InputError):
    """A filter value that does not parse; ``field`` names the parameter."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class SearchFilter:
    after: str | None = None  # inclusive lower bound on the date taken, YYYY-MM-DDTHH:MM:SS
    before: str | None = None  # exclusive upper bound, same form
    folder: str | None = None  # absolute folder path
    camera: str | None = None  # lower-cased substring of "make model"
    near: tuple[float, float, float] | None = None  # lat, lon, km
    sort: str = "score"

    @classmethod
    def parse(cls, *, after=None, before=None, folder=None, camera=None, near=None, sort=None) -> SearchFilter:
        """A filter from user input (CLI flags, API fields): dates as text, ``near`` as ``"LAT,LON[,KM]"`` or a
        sequence of 2 or 3 numbers (KM defaults to 25)."""
        sort = sort or "score"
        if sort not in SORTS:
            raise FilterError("sort", f"sort={sort!r} is not one of {', '.join(SORTS)}")
        low, high = _bound(after, "after", start=True), _bound(before, "before", start=False)
        if low and high and low >= high:
            raise FilterError("before", f"before={before!r} is not later than after={after!r}; swap them")
        if camera is not None and not str(camera).strip():
            raise FilterError("camera", "camera='' is empty; pass part of the camera's make or model")
        return cls(
            after=low,
            before=high,
            folder=_folder(folder) if folder is not None else None,
            camera=str(camera).strip().lower() if camera is not None else None,
            near=_near(near) if near is not None else None,
            sort=sort,
        )

    @property
    def narrows(self) -> bool:
        """Whether the filter drops rows (a sort alone does not)."""
        return any(v is not None for v in (self.after, self.before, self.folder, self.camera, self.near))


def _bound(value, field: str, start: bool) -> str | None:
    """The first instant of the period ``value`` names (``start``) or the first instant after it."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        first = _first_instant(text)
    except (ValueError, OverflowError):
        raise FilterError(
            field, f"{field}={text[:40]!r} is not a date; use YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS]"
        ) from None
    if start:
        return first.isoformat()
    try:
        return _next_period(text, first).isoformat()
    except (ValueError, OverflowError):  # the period ends with the calendar (year 9999)
        return datetime.max.replace(microsecond=0).isoformat()


def _first_instant(text: str) -> datetime:
    if _YEAR.match(text):
        return datetime(int(text), 1, 1)
    if _MONTH.match(text):
        return datetime(int(text[:4]), int(text[5:]), 1)
    if len(text) == 10:
        day = date.fromisoformat(text)
        return datetime(day.year, day.month, day.day)
    return datetime.fromisoformat(text).replace(tzinfo=None, microsecond=0)


def _next_period(text: str, first: datetime) -> datetime:
    """The first instant after the year, month or day ``text`` names (an instant is its own end)."""
    if _YEAR.match(text):
        return datetime(first.year + 1, 1, 1)
    if _MONTH.match(text):
        return datetime(first.year + first.month // 12, first.month % 12 + 1, 1)
    if len(text) == 10:
        return first + timedelta(days=1)
    return first


def _folder(value) -> str:
    text = str(value)
    if not text.strip():
        raise FilterError("folder", "folder='' is empty; pass a folder the index holds images under")
    return str(Path(text).expanduser().resolve())


def _near(value) -> tuple[float, float, float]:
    parts = value.split(",") if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else None
    try:
        numbers = [float(p) for p in parts]
    except (TypeError, ValueError):
        numbers = None
    if not numbers or len(numbers) not in (2, 3) or not all(math.isfinite(n) for n in numbers):
        raise FilterError("near", f"near={str(value)[:60]!r} is not LAT,LON[,KM]; e.g. 38.72,-9.14,10")
    lat, lon, km = (*numbers, DEFAULT_NEAR_KM)[:3]
    if not -90 <= lat <= 90:
        raise FilterError("near", f"near latitude {lat} is outside -90..90; pass LAT,LON[,KM]")
    if not -180 <= lon <= 180:
        raise FilterError("near", f"near longitude {lon} is outside -180..180; pass LAT,LON[,KM]")
    if km <= 0:
        raise FilterError("near", f"near distance {km} km is not positive; pass LAT,LON,KM with KM > 0")
    return lat, lon, km


def haversine_km(lat1, lon1, lat2, lon2):
    """Great-circle distance in km (numpy arrays or numbers) on a sphere of the mean Earth radius."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(np.subtract(lon2, lon1)) / 2) ** 2
    return 2 * EARTH_KM * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def sql_conditions(flt: SearchFilter, dialect: str) -> tuple[list[str], list]:
    """WHERE conditions (joined with AND) and their parameters for ``dialect`` ``"sqlite"`` (``?``) or
    ``"postgres"`` (``%s``). ``near`` becomes a latitude band here (a cheap pre-filter both back-ends share);
    SQLite finishes it with ``haversine_km`` in numpy, PostgreSQL with the same formula in SQL."""
    mark = "?" if dialect == "sqlite" else "%s"
    out, params = [], []
    if flt.after is not None:
        out.append(f"taken >= {mark}")
        params.append(flt.after)
    if flt.before is not None:
        out.append(f"taken < {mark}")
        params.append(flt.before)
    if flt.folder is not None:
        prefix = to_db(flt.folder.rstrip("/") + "/")
        head = f"substr(path, 1, {mark})" if dialect == "sqlite" else f"left(path, {mark})"
        out.append(f"{head} = {mark}")
        params += [len(prefix), prefix]
    if flt.camera is not None:
        find = "instr" if dialect == "sqlite" else "strpos"
        out.append(f"{find}(lower(coalesce(make, '') || ' ' || coalesce(model, '')), {mark}) > 0")
        params.append(flt.camera)
    if flt.near is not None:
        lat, _, km = flt.near
        band = math.degrees(km / EARTH_KM) + 1e-9
        out.append(f"lat BETWEEN {mark} AND {mark} AND lon IS NOT NULL")
        params += [lat - band, lat + band]
    return out, params
