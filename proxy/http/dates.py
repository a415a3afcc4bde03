"""HTTP-date parsing and formatting (RFC 9110 5.6.7)."""

from __future__ import annotations

import calendar
import math
import re
import time
from functools import lru_cache

__all__ = ["format_http_date", "parse_http_date"]

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # time.struct_time.tm_wday order
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NUM = {m.lower(): i for i, m in enumerate(_MONTHS, 1)}

# RFC 9111 4.2: a cache SHOULD match HTTP-dates case-insensitively, and SHOULD treat a
# zone other than "GMT" as invalid, so only GMT is accepted (asctime carries no zone).
_IMF = re.compile(
    r"(?:mon|tue|wed|thu|fri|sat|sun), (\d\d) ([a-z]{3}) (\d{4}) (\d\d):(\d\d):(\d\d) gmt",
    re.IGNORECASE | re.ASCII,
)
_RFC850 = re.compile(
    r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday), "
    r"(\d\d)-([a-z]{3})-(\d\d) (\d\d):(\d\d):(\d\d) gmt",
    re.IGNORECASE | re.ASCII,
)
# asctime pads single-digit days with a space: "Nov  6".
_ASCTIME = re.compile(
    r"(?:mon|tue|wed|thu|fri|sat|sun) ([a-z]{3}) ([ \d]\d) (\d\d):(\d\d):(\d\d) (\d{4})",
    re.IGNORECASE | re.ASCII,
)

# RFC 9110 5.6.7: a two-digit RFC 850 year that appears more than 50 years in the future
# is the most recent past year with those digits. Pinned at import to keep parsing pure.
_THIS_YEAR = time.gmtime().tm_year

# IMF-fixdate has a 4-digit year; clamp formatting to 0001-01-01..9999-12-31.
_MIN_TS = -62135596800
_MAX_TS = 253402300799


def _timestamp(year: int, month: int, day: int, hh: int, mm: int, ss: int) -> float | None:
    # Grammar allows second 60 (leap second); timegm folds it into the next minute.
    if not (year >= 1 and 1 <= month <= 12 and hh <= 23 and mm <= 59 and ss <= 60):
        return None
    if not 1 <= day <= calendar.monthrange(year, month)[1]:
        return None
    return float(calendar.timegm((year, month, day, hh, mm, ss, 0, 0, 0)))


@lru_cache(maxsize=4096)
def parse_http_date(value: str | None) -> float | None:
    """POSIX seconds for an HTTP-date in any of the three RFC 9110 formats; None if invalid."""
    if not value:
        return None
    v = value.strip(" \t")
    m = _IMF.fullmatch(v)  # the only format senders may generate: try it first
    if m is not None:
        month = _MONTH_NUM.get(m[2].lower())
        if month is None:
            return None
        return _timestamp(int(m[3]), month, int(m[1]), int(m[4]), int(m[5]), int(m[6]))
    m = _RFC850.fullmatch(v)
    if m is not None:
        month = _MONTH_NUM.get(m[2].lower())
        if month is None:
            return None
        year = _THIS_YEAR - _THIS_YEAR % 100 + int(m[3])
        if year > _THIS_YEAR + 50:
            year -= 100
        return _timestamp(year, month, int(m[1]), int(m[4]), int(m[5]), int(m[6]))
    m = _ASCTIME.fullmatch(v)
    if m is not None:
        month = _MONTH_NUM.get(m[1].lower())
        day = m[2].strip()
        if month is None or not day:
            return None
        return _timestamp(int(m[6]), month, int(day), int(m[3]), int(m[4]), int(m[5]))
    return None


@lru_cache(maxsize=256)
def _format_second(sec: int) -> str:
    t = time.gmtime(sec)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


def format_http_date(ts: float) -> str:
    """IMF-fixdate for ``ts``; sub-second part dropped (floor), out-of-range values clamped."""
    if not _MIN_TS <= ts <= _MAX_TS:  # also catches NaN
        ts = _MAX_TS if ts > 0 else _MIN_TS
    return _format_second(math.floor(ts))
