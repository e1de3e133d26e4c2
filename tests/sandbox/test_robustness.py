"""Whatever JSON a client sends, the sandbox answers with a QBO fault, never an internal error.

Runs the store and the query engine in-process (no HTTP) so hypothesis can try many shapes quickly.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qbo_sandbox import query
from qbo_sandbox.config import SandboxConfig
from qbo_sandbox.entities import SPECS
from qbo_sandbox.errors import QBOError
from qbo_sandbox.state import Sandbox

SANDBOX = Sandbox(SandboxConfig())
REALM = SANDBOX.create_realm("sample-us")

KEYS = st.sampled_from(
    [
        "value",
        "Amount",
        "DetailType",
        "SalesItemLineDetail",
        "ItemRef",
        "LinkedTxn",
        "TxnId",
        "TxnType",
        "Qty",
        "UnitPrice",
        "DiscountLineDetail",
        "PercentBased",
        "DiscountPercent",
        "AccountRef",
        "Line",
        "TotalTax",
        "TaxLine",
        "Id",
        "Address",
        "AccountBasedExpenseLineDetail",
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 200),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "x", "1", "130", "a:b", "2026-01-01", "SalesItemLineDetail", "Invoice"]),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=12,
)
FIELDS = st.sampled_from(
    [
        "DisplayName",
        "GivenName",
        "CustomerRef",
        "Line",
        "TotalAmt",
        "TxnDate",
        "DueDate",
        "DocNumber",
        "PaymentType",
        "AccountRef",
        "DepositToAccountRef",
        "Name",
        "Type",
        "AccountType",
        "AccountSubType",
        "ParentRef",
        "PrimaryEmailAddr",
        "TxnTaxDetail",
        "SalesTermRef",
        "EntityRef",
        "IncomeAccountRef",
        "Active",
        "Balance",
        "BillAddr",
        "LinkedTxn",
        "EmailStatus",
        "BillEmail",
        "Credit",
        "sparse",
    ]
)
BODIES = st.dictionaries(FIELDS, JSON, max_size=6)
VALID_LINE = [
    {"DetailType": "SalesItemLineDetail", "Amount": 5, "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}
]


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(
    entity=st.sampled_from(sorted(SPECS)),
    body=BODIES,
    op=st.sampled_from(["create", "update", "delete", "void"]),
    with_basics=st.booleans(),
)
def test_any_body_gets_a_fault_or_a_result(entity: str, body: dict, op: str, with_basics: bool) -> None:
    if with_basics:
        body.setdefault("CustomerRef", {"value": "1"})
        body.setdefault("Line", VALID_LINE)
    if op != "create":
        existing = next(iter(REALM.data.get(entity, {}).values()), None)
        if existing is not None:
            body["Id"], body["SyncToken"] = existing["Id"], existing.get("SyncToken", "0")
    try:
        result = REALM.create(entity, body) if op == "create" else getattr(REALM, op)(entity, body)
    except QBOError:
        return
    assert isinstance(result, dict) and result["Id"]


TOKENS = st.sampled_from(
    [
        "select",
        "*",
        "from",
        "Customer",
        "Invoice",
        "where",
        "DisplayName",
        "=",
        "'a'",
        "'",
        "(",
        ")",
        ",",
        "in",
        "like",
        "and",
        "or",
        "orderby",
        "desc",
        "startposition",
        "maxresults",
        "1",
        "-1",
        "count(*)",
        "Active",
        "true",
        "MetaData.LastUpdatedTime",
        "'2026-01-01'",
        "<",
        ">=",
        "!=",
        "\\'",
        "Line.Amount",
        "CustomerRef",
        "' '",
    ]
)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(tokens=st.lists(TOKENS, max_size=14), prefix=st.booleans())
def test_any_query_text_gets_a_fault_or_a_response(tokens: list[str], prefix: bool) -> None:
    text = ("select * from Customer " if prefix else "") + " ".join(tokens)
    try:
        out = query.run(text, REALM.data, SANDBOX.config, REALM.name_candidates)
    except QBOError as err:
        assert err.code in ("4000", "4001")
        return
    assert isinstance(out, dict)
