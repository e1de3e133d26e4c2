"""Fault bodies in every shape QBO produces (qbo-api.md §6)."""

from __future__ import annotations

import json
from typing import Any

from qbo_sandbox import clock


class QBOError(Exception):
    """A data-layer fault: JSON `Fault` envelope, usually HTTP 400."""

    def __init__(
        self,
        code: str,
        message: str,
        detail: str = "",
        element: str | None = "",
        *,
        status: int = 400,
        fault_type: str = "ValidationFault",
    ) -> None:
        super().__init__(f"{code} {message}: {detail}")
        self.code = code
        self.message = message
        self.detail = detail
        self.element = element
        self.status = status
        self.fault_type = fault_type

    def error_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {"Message": self.message, "Detail": self.detail, "code": self.code}
        if self.element is not None:
            item["element"] = self.element
        return item

    def fault(self) -> dict[str, Any]:
        return {"Error": [self.error_item()], "type": self.fault_type}

    def body(self) -> dict[str, Any]:
        return {"Fault": self.fault(), "time": clock.envelope_stamp()}


def required(element: str) -> QBOError:
    return QBOError(
        "2020",
        "Required param missing, need to supply the required value for the API",
        f"Required parameter {element} is missing in the request",
        element,
    )


def too_long(element: str, maximum: int, supplied: int) -> QBOError:
    return QBOError(
        "2050",
        "String length is either shorter or longer than supported by specification",
        f"String length specified does not match the supported length. Min:0 Max:{maximum:,} supported. "
        f"Supplied length: {supplied:,}",
        element,
    )


def invalid_reference(element: str, value: str, why: str = "") -> QBOError:
    reason = why or (
        "Something you're trying to use has been made inactive. Check the fields with accounts, customers, "
        "items, vendors or employees."
    )
    return QBOError("2500", "Invalid Reference Id", f"Invalid Reference Id : {reason}", element)


def not_found(deleted: bool = True) -> QBOError:
    detail = (
        "Object Not Found : Another user has deleted this transaction."
        if deleted
        else "Object Not Found : Something you're trying to use has been made inactive. "
        "Check the fields with "
        "accounts, customers, items, vendors or employees."
    )
    return QBOError("610", "Object Not Found", detail, "")


def stale(element: str = "SyncToken") -> QBOError:
    return QBOError(
        "5010",
        "Stale Object Error",
        "Stale Object Error : You and sandbox were working on this at the same time. sandbox finished before "
        "you did, so your work was not saved.",
        "",
    )


def duplicate_name(kind: str = "customer, vendor or employee") -> QBOError:
    return QBOError(
        "6240",
        "Duplicate Name Exists Error",
        f"The name supplied already exists. : Another {kind} is already using this \nname. Please use a "
        "different name.",
        "",
    )


def duplicate_docnumber(doc: str, txn_type: str, txn_id: str) -> QBOError:
    return QBOError(
        "6140",
        "Duplicate Document Number Error",
        "Duplicate Document Number Error : You must specify a different number. This number has already been "
        f"used. DocNumber={doc} is assigned to TxnType={txn_type} with TxnId={txn_id}",
        "",
    )


def business(detail: str, element: str = "") -> QBOError:
    return QBOError(
        "6000",
        "A business validation error has occurred while processing your request",
        f"Business Validation Error: {detail}",
        element,
    )


def unsupported(path: str) -> QBOError:
    return QBOError(
        "500",
        "Unsupported Operation",
        f"Operation {path} is not supported.",
        "",
    )


def invalid_enum(element: str, value: str) -> QBOError:
    return QBOError("2170", "Invalid Enumeration", f"Invalid Enumeration : {value}", element)


def bad_request(detail: str, element: str = "") -> QBOError:
    return QBOError("2010", "Request has invalid or unsupported property", detail, element)


def query_parse(detail: str) -> QBOError:
    return QBOError("4000", "Error parsing query", f"QueryParserError: {detail}", None)


def query_invalid(detail: str) -> QBOError:
    return QBOError("4001", "Invalid query", f"QueryValidationError: {detail}", None)


def system_fault() -> QBOError:
    return QBOError(
        "10000",
        "An application error has occurred while processing your request",
        "System Failure Error: An unexpected error occurred while accessing or saving your data. "
        "Please wait a "
        "few minutes and try again. If the problem persists, contact customer support.",
        None,
        status=500,
        fault_type="SystemFault",
    )


def gateway_body(status: int, detail: str) -> dict[str, Any]:
    """The API gateway's own envelope: lower-case keys, epoch-millis `time` (qbo-api.md §6.1)."""
    if status == 403:
        message, code, ftype = (
            "message=AuthorizationFailed; errorCode=003100; statusCode=403",
            "3100",
            "SERVICE",
        )
    else:
        message, code, ftype = (
            "message=AuthenticationFailed; errorCode=003200; statusCode=401",
            "3200",
            "AUTHENTICATION",
        )
    return {
        "warnings": None,
        "intuitObject": None,
        "fault": {
            "error": [{"message": message, "detail": detail, "code": code, "element": None}],
            "type": ftype,
        },
        "report": None,
        "queryResponse": None,
        "batchItemResponse": [],
        "attachableResponse": [],
        "syncErrorResponse": None,
        "requestId": None,
        "time": int(clock.now().timestamp() * 1000),
        "status": None,
        "cdcresponse": [],
    }


def throttle_xml() -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<IntuitResponse time="{clock.envelope_stamp()}" xmlns="http://schema.intuit.com/finance/v3">'
        '<Fault type="SERVICE"><Error code="3001">'
        "<Message>message=ThrottleExceeded; errorCode=003001; statusCode=429</Message>"
        "<Detail>The request limit was reached.  Try again later</Detail></Error></Fault></IntuitResponse>"
    )


def auth_xml() -> str:
    """The XML 401 some gateways send even to JSON clients (qbo-api.md §6.1)."""
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<IntuitResponse time="{clock.envelope_stamp()}" xmlns="http://schema.intuit.com/finance/v3">'
        '<Fault type="AuthenticationFault"><Error code="100"><Message>General Authentication Error</Message>'
        "<Detail>AuthenticationErrorGeneral: SRV-110-Authentication Failure , statusCode: 401</Detail>"
        "</Error></Fault></IntuitResponse>"
    )


def throttle_json() -> dict[str, Any]:
    err = QBOError(
        "3001",
        "message=ThrottleExceeded; errorCode=003001; statusCode=429",
        "The request limit was reached.  Try again later",
        None,
        status=429,
        fault_type="SERVICE",
    )
    return err.body()


def html_error(status: int) -> str:
    titles = {
        500: "500 Internal Server Error",
        502: "502 Bad Gateway",
        503: "503 Service Temporarily Unavailable",
        504: "504 Gateway Time-out",
    }
    title = titles.get(status, f"{status} Error")
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n"
        "</body>\r\n</html>\r\n"
    )


def dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
