"""Typed QBO errors, named by what the caller should do about them, and the one fault parser.

Every HTTP answer from QBO goes through `error_from_response`; callers never look at status
codes or Fault JSON themselves. The classes say how to recover:

- `Retriable`: try the same request again later (same `requestid`); nothing is wrong with it.
- `RateLimited`: a `Retriable` that came from throttling (HTTP 429); wait `retry_after`.
- `RecordRejected`: QBO refused this record (a Fault); retrying unchanged will fail again.
- `RequestRefused`: a `RecordRejected` for a 4xx without a Fault body (404, 405, ...): the URL
  or method was refused, nothing was written, and the same request will be refused again.
- `ReauthRequired`: the connection itself is unusable until the owner reconnects.
- `CompanyUnavailable`: QBO refused the company or the app as a whole, not the record (a
  lapsed subscription, the app refused inside an answer, the app's keys refused): pause the
  connection and try again later; no record is at fault.

Messages never contain tokens or request bodies.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from xml.etree import ElementTree

__all__ = [
    "CompanyUnavailable",
    "QBOError",
    "RateLimited",
    "ReauthRequired",
    "RecordRejected",
    "RequestRefused",
    "Retriable",
    "error_from_fault",
    "error_from_response",
    "find_fault",
]

# Fault codes in the authentication/authorisation range (qbo-api.md §6.3: 100, 120, 3100, 3200).
_AUTH_CODES = {"100", "120", "3100", "3200"}
# 6190 Invalid Company Status: the company's subscription ended or has a billing problem, and it
# has been seen inside an HTTP 200 (qbo-api.md §6.1, §6.3). Nothing about the record is wrong.
_COMPANY_CODES = {"6190"}
# The app-authorisation family: from the gateway (401/403) it means the token; inside a 200 or a
# batch item it speaks of the app's access to the company, which no reconnect of ours can fix.
_APP_CODES = {"3100", "3200"}


class QBOError(Exception):
    """Base of every QBO failure. `status` is the HTTP status when there was an answer."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        intuit_tid: str | None = None,
        code: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.intuit_tid = intuit_tid
        self.code = code

    def __str__(self) -> str:
        parts = [self.message]
        if self.code:
            parts.append(f"code={self.code}")
        if self.status is not None:
            parts.append(f"status={self.status}")
        return " ".join(parts)


class Retriable(QBOError):
    """Timeouts, connection errors, 5xx, dropped answers: resend the same request later."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class RateLimited(Retriable):
    """HTTP 429 (ThrottleExceeded, code 3001). Intuit says wait 60 s (qbo-api.md §7)."""


class RecordRejected(QBOError):
    """A Fault about the record that was sent (validation or business rule)."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        element: str | None = None,
        detail: str = "",
        fault_type: str = "",
        errors: list[dict[str, Any]] | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, code=code, **kw)
        self.element = element or None
        self.detail = detail
        self.fault_type = fault_type
        # Every error of the Fault (QBO may send several); the first one is the headline.
        self.errors = errors or []

    @property
    def is_stale(self) -> bool:
        """5010 Stale Object Error: re-read for the current SyncToken and try again."""
        return self.code == "5010"

    @property
    def is_duplicate_name(self) -> bool:
        """6240: DisplayName is unique across customers, vendors and employees (qbo-api.md §2.1)."""
        return self.code == "6240"

    @property
    def is_duplicate_docnumber(self) -> bool:
        """6140 Duplicate Document Number Error."""
        return self.code == "6140"

    @property
    def is_not_found(self) -> bool:
        """610 Object Not Found (deleted in QBO, or a reference made inactive)."""
        return self.code == "610"


class RequestRefused(RecordRejected):
    """A 4xx that carries no Fault (404 Not Found, 405 Method Not Allowed, ...).

    qbo-api.md §6.2: a 404 is "a bug", not a transient state; nothing was executed, so this is
    permanent like any rejection (retrying it 8 times only delays the message a person needs).
    """


class ReauthRequired(QBOError):
    """invalid_grant, a 401 after one refresh, revoked access, or 403 from the gateway."""


class CompanyUnavailable(QBOError):
    """QBO refused the whole company or the app, not one record: pause, try again later.

    `reason` names the cause for people: "company_status" (6190), "app_refused" (3100/3200
    inside an answer), "app_keys" (the token service refused the app's client id/secret).
    """

    def __init__(self, message: str, *, reason: str, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.reason = reason


# --------------------------------------------------------------------------------------------
# Parsing


def find_fault(data: Any) -> dict[str, Any] | None:
    """The Fault object of a JSON body, under either spelling QBO uses.

    The data layer answers `{"Fault": {"Error": [...], "type": ...}}`; the API gateway answers
    lower-case `{"fault": {"error": [...], "type": ...}}` (qbo-api.md §6.1).
    """
    if not isinstance(data, Mapping):
        return None
    for key in ("Fault", "fault"):
        fault = data.get(key)
        if isinstance(fault, Mapping):
            return dict(fault)
    return None


def _errors_of(fault: Mapping[str, Any]) -> list[dict[str, Any]]:
    raw = fault.get("Error", fault.get("error", []))
    if isinstance(raw, Mapping):
        raw = [raw]
    out = []
    for item in raw or []:
        if not isinstance(item, Mapping):
            continue
        out.append(
            {
                "code": str(item.get("code", item.get("Code", "")) or ""),
                "message": str(item.get("Message", item.get("message", "")) or ""),
                "detail": str(item.get("Detail", item.get("detail", "")) or ""),
                "element": item.get("element", item.get("Element")) or None,
            }
        )
    return out


_GATEWAY_STATUS = re.compile(r"statusCode[=:]\s*(\d{3})")
_GATEWAY_CODE = re.compile(r"errorCode=0*(\d+)")


def error_from_fault(
    fault: Mapping[str, Any], *, status: int | None = None, intuit_tid: str | None = None
) -> QBOError:
    """A typed error for one Fault object (also used for batch items)."""
    errors = _errors_of(fault)
    first = errors[0] if errors else {"code": "", "message": "", "detail": "", "element": None}
    fault_type = str(fault.get("type", "") or "")
    code = first["code"]
    message = first["message"] or fault_type or "QuickBooks returned an error"
    # Gateway faults carry the real status inside the message: "…; statusCode=429".
    embedded = _GATEWAY_STATUS.search(message) or _GATEWAY_STATUS.search(first["detail"])
    effective = int(embedded.group(1)) if embedded else status
    if not code.isdigit() and (m := _GATEWAY_CODE.search(message)):
        code = m.group(1)
    kw: dict[str, Any] = {"status": status, "intuit_tid": intuit_tid}
    if code in _COMPANY_CODES:
        return CompanyUnavailable(message, reason="company_status", code=code, **kw)
    if code in _APP_CODES and effective in (None, 200):
        return CompanyUnavailable(message, reason="app_refused", code=code, **kw)
    if effective == 429 or code == "3001":
        return RateLimited(message, code=code, **kw)
    if effective in (401, 403) or code in _AUTH_CODES or fault_type.lower() == "authenticationfault":
        return ReauthRequired(message, code=code, **kw)
    is_system = fault_type.lower() == "systemfault" or (code.isdigit() and int(code) >= 10000)
    if is_system or (effective is not None and effective >= 500):
        return Retriable(message, code=code, **kw)
    return RecordRejected(
        message,
        code=code,
        element=first["element"],
        detail=first["detail"],
        fault_type=fault_type,
        errors=errors,
        **kw,
    )


def _xml_fault(text: str) -> dict[str, Any] | None:
    # Throttling and some 401s come back as XML even with Accept: application/json (§6.1).
    # QBO's fault XML never has a DTD; refusing one keeps entity expansion tricks out.
    if "<!" in text[:2000].upper().replace("<![CDATA[", ""):
        return None
    try:
        root = ElementTree.fromstring(text)  # noqa: S314 - no DTD (checked above), so no entities
    except ElementTree.ParseError:
        return None
    fault = None
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] == "Fault":
            fault = el
            break
    if fault is None:
        return None
    errors = []
    for err in fault:
        if err.tag.rsplit("}", 1)[-1] != "Error":
            continue
        fields = {child.tag.rsplit("}", 1)[-1]: (child.text or "").strip() for child in err}
        errors.append(
            {
                "code": err.get("code", ""),
                "element": err.get("element"),
                "Message": fields.get("Message", ""),
                "Detail": fields.get("Detail", ""),
            }
        )
    return {"type": fault.get("type", ""), "Error": errors}


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after") or headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date; rare enough that the default wait is fine


def error_from_response(status: int, headers: Mapping[str, str], body: bytes) -> tuple[QBOError | None, Any]:
    """Classify one HTTP answer: (error or None, parsed JSON body or None).

    Handles every shape in qbo-api.md §6.1: JSON `Fault`/`fault` with any status (including a
    Fault inside a 200), XML `IntuitResponse` faults (429/401), HTML 5xx pages from the edge,
    and empty or non-JSON bodies.
    """
    tid = headers.get("intuit_tid") or headers.get("intuit-tid")
    retry_after = _retry_after(headers)
    text = body.decode("utf-8", errors="replace") if body else ""
    data: Any = None
    fault: dict[str, Any] | None = None
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        fault = find_fault(data)
    elif stripped.startswith("<") and not stripped[:15].lower().startswith(("<!doctype", "<html")):
        fault = _xml_fault(stripped)

    err: QBOError | None = None
    if fault is not None:
        err = error_from_fault(fault, status=status, intuit_tid=tid)
        if status == 429 and not isinstance(err, RateLimited):
            err = RateLimited(err.message, code=err.code, status=status, intuit_tid=tid)
        elif status >= 500 and not isinstance(err, Retriable):
            err = Retriable(err.message, code=err.code, status=status, intuit_tid=tid)
        elif status in (401, 403) and not isinstance(err, ReauthRequired):
            err = ReauthRequired(err.message, code=err.code, status=status, intuit_tid=tid)
    elif status == 429:
        err = RateLimited("QuickBooks is throttling requests", status=status, intuit_tid=tid)
    elif status >= 500:
        err = Retriable(f"QuickBooks is unavailable (HTTP {status})", status=status, intuit_tid=tid)
    elif status in (401, 403):
        err = ReauthRequired(
            f"QuickBooks refused the credentials (HTTP {status})", status=status, intuit_tid=tid
        )
    elif status >= 400:
        err = RequestRefused(
            f"QuickBooks refused the request (HTTP {status})",
            code=f"http_{status}",
            status=status,
            intuit_tid=tid,
        )
    elif data is None or not isinstance(data, dict):
        # A 200 that is not a JSON object: a truncated or proxy-mangled answer; resend it.
        err = Retriable("QuickBooks sent an unreadable answer", status=status, intuit_tid=tid)

    if isinstance(err, Retriable) and err.retry_after is None:
        err.retry_after = retry_after
    return err, data
