"""Company-local time. Sample company books live in America/Los_Angeles, and QBO stamps MetaData and
response `time` with the company's UTC offset, so every timestamp goes through here."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

COMPANY_TZ = ZoneInfo("America/Los_Angeles")


def now() -> datetime:
    return datetime.now(COMPANY_TZ)


def meta_stamp(dt: datetime) -> str:
    """MetaData timestamps carry whole seconds: 2015-07-23T10:58:12-07:00."""
    return dt.astimezone(COMPANY_TZ).isoformat(timespec="seconds")


def envelope_stamp(dt: datetime | None = None) -> str:
    """Response `time` carries milliseconds: 2015-07-23T11:04:15.496-07:00."""
    return (dt or now()).astimezone(COMPANY_TZ).isoformat(timespec="milliseconds")


def today() -> str:
    return now().date().isoformat()


_BASIC_OFFSET = re.compile(r"([+-]\d{2})(\d{2})$")


def parse_stamp(text: str) -> datetime | None:
    """Parse a QBO date or timestamp literal; a bare date means company-local midnight.

    Accepts the `-0700` offset form seen in Intuit's older examples as well as `-07:00` and `Z`."""
    text = text.strip()
    if not text:
        return None
    if len(text) == 10:
        try:
            d = date.fromisoformat(text)
        except ValueError:
            return None
        return datetime(d.year, d.month, d.day, tzinfo=COMPANY_TZ)
    if "T" in text and _BASIC_OFFSET.search(text) and text[-6] not in "+-":
        text = _BASIC_OFFSET.sub(r"\1:\2", text)
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=COMPANY_TZ)
    return dt


def shift_stamp(text: str, days: int) -> str:
    """Move a date or timestamp by whole days keeping the Los Angeles wall-clock time, so the UTC offset
    follows daylight saving time exactly as Intuit's sandbox template shifting does."""
    if len(text) == 10:
        return (date.fromisoformat(text) + timedelta(days=days)).isoformat()
    dt = parse_stamp(text)
    if dt is None:
        return text
    local = dt.astimezone(COMPANY_TZ).replace(tzinfo=None) + timedelta(days=days)
    return local.replace(tzinfo=COMPANY_TZ).isoformat(timespec="seconds")
