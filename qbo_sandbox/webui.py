"""A small web UI in the shape of QuickBooks Online's, so "open in QuickBooks" links work
against the sandbox: ``/app/`` (companies), ``/app/customers?realmId=``,
``/app/customerdetail?nameId=&realmId=`` (the URL QBO itself uses for a customer),
``/app/invoice?txnId=&realmId=``, ``/app/recvpayment?txnId=&realmId=`` (an invoice, a payment
received) and ``/app/items?realmId=`` (Products and Services).

No auth (a local sandbox), read straight from the realm's tables: not metered, not throttled, not
counted and not logged. Every value from the books is escaped: names are whatever API clients sent.

One write: the customer page's "Merge into…" form (``POST /app/customerdetail/merge``), because
QBO merges only in its own UI (merge.py). It carries a per-process CSRF token, and when the sandbox
has a control token (it listens beyond loopback) the form asks for that too, so the page is no way
around the control plane's guard.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import secrets
import uuid
from typing import Any
from urllib.parse import parse_qs, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from qbo_sandbox import clock, errors, merge
from qbo_sandbox.state import Sandbox
from qbo_sandbox.store import Realm

Obj = dict[str, Any]

_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f4f5f8;color:#1f2328;
margin:0;padding:0}
header.bar{background:#1b6e12;color:#fff;padding:.6rem 1.5rem;font-weight:600}
header.bar a{color:#fff;text-decoration:none}
main{max-width:60rem;margin:1.5rem auto;background:#fff;border:1px solid #d8dce3;border-radius:8px;
padding:1.5rem 2rem}
nav.crumbs{font-size:.85rem;color:#5a616d;margin-bottom:.75rem}
nav.crumbs a{color:#0b6bcb;text-decoration:underline}
h1{font-size:1.4rem;margin:0 0 .25rem}
h2{font-size:1.05rem;margin:1.5rem 0 .5rem}
p.sub{color:#555d68;margin:0 0 1rem}
dl.fields{display:grid;grid-template-columns:10rem 1fr;gap:.35rem 1rem;margin:0}
dl.fields dt{color:#5a616d}
dl.fields dd{margin:0;white-space:pre-line}
table{border-collapse:collapse;width:100%;font-size:.92rem}
th,td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid #e6e8ec}
th{color:#555d68;font-weight:600;background:#f8f9fb}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
a{color:#0b6bcb}
.badge{display:inline-block;font-size:.75rem;padding:.05rem .45rem;border-radius:999px;border:1px solid}
.badge.active{color:#1d6f12;border-color:#9fd394;background:#eef8ec}
.badge.inactive{color:#5a616d;border-color:#c8ccd3;background:#f1f2f4}
.badge.overdue{color:#8a1c12;border-color:#f5c2bd;background:#fdecea}
.empty{color:#5a616d;font-style:italic}
.notice{border:1px solid #9fd394;background:#eef8ec;color:#1d4f12;padding:.5rem .75rem;border-radius:6px}
.problem{border:1px solid #f5c2bd;background:#fdecea;color:#8a1c12;padding:.5rem .75rem;border-radius:6px}
form.act{display:grid;gap:.5rem;max-width:32rem;margin-top:1rem}
form.act label{font-weight:600}
form.act select,form.act input{font:inherit;padding:.3rem}
form.act button{font:inherit;justify-self:start;padding:.35rem 1rem;background:#1b6e12;color:#fff;
border:0;border-radius:4px;cursor:pointer}
form.act p{margin:0;color:#555d68}
.rid{color:#5a616d;font-size:.85rem}
footer{max-width:60rem;margin:0 auto 1.5rem;color:#5a616d;font-size:.8rem;text-align:center}
"""


def e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _href(path: str, **params: str) -> str:
    return e(f"{path}?{urlencode(params)}" if params else path)


def _customers_href(realm: Realm) -> str:
    return _href("/app/customers", realmId=realm.realm_id)


def _detail_href(realm: Realm, customer_id: Any) -> str:
    return _href("/app/customerdetail", nameId=str(customer_id), realmId=realm.realm_id)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    text = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)} · QBO Sandbox</title><style>{_STYLE}</style></head>"
        '<body><header class="bar"><a href="/app/">QuickBooks Sandbox</a></header>'
        f"<main>{body}</main>"
        "<footer>QBO Sandbox: a local stand-in for QuickBooks Online's web pages. "
        "No real Intuit account is involved.</footer></body></html>"
    )
    return HTMLResponse(text, status_code=status, headers={**_HEADERS, "intuit_tid": str(uuid.uuid4())})


def _not_found(title: str, message: str) -> HTMLResponse:
    body = (
        f'<h1>{e(title)}</h1><p class="sub">{e(message)}</p>'
        '<p><a href="/app/">See all sandbox companies</a></p>'
    )
    return _page(title, body, 404)


def _company_name(realm: Realm) -> str:
    info = next(iter(realm.data.get("CompanyInfo", {}).values()), {})
    name = info.get("CompanyName") if isinstance(info, dict) else None
    return str(name or realm.company_name)


def _num(value: Any) -> float:
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0


def money(value: Any, currency: str = "USD") -> str:
    amount = _num(value)
    sign = "-" if amount < 0 else ""
    text = f"{abs(amount):,.2f}"
    return f"{sign}${text}" if currency == "USD" else f"{sign}{text} {currency}"


def _currency(obj: Obj) -> str:
    ref = obj.get("CurrencyRef")
    return str(ref.get("value") or "USD") if isinstance(ref, dict) else "USD"


def _ref_value(obj: Obj, key: str) -> str | None:
    ref = obj.get(key)
    if isinstance(ref, dict) and ref.get("value") not in (None, ""):
        return str(ref["value"])
    return None


def _active(obj: Obj) -> bool:
    return obj.get("Active") is not False


def _badge(active: bool) -> str:
    return (
        '<span class="badge active">Active</span>'
        if active
        else '<span class="badge inactive">Inactive</span>'
    )


def _address(addr: Any) -> str:
    if not isinstance(addr, dict):
        return ""
    lines = [str(addr[k]) for k in ("Line1", "Line2", "Line3", "Line4", "Line5") if addr.get(k)]
    region = " ".join(str(addr[k]) for k in ("CountrySubDivisionCode", "PostalCode") if addr.get(k))
    city = ", ".join(p for p in (str(addr.get("City") or ""), region) if p)
    if city:
        lines.append(city)
    if addr.get("Country"):
        lines.append(str(addr["Country"]))
    return "\n".join(lines)


def _phone(obj: Obj, key: str) -> str:
    value = obj.get(key)
    return str(value.get("FreeFormNumber") or "") if isinstance(value, dict) else ""


def _email(obj: Obj) -> str:
    value = obj.get("PrimaryEmailAddr")
    return str(value.get("Address") or "") if isinstance(value, dict) else ""


def _customer_type(realm: Realm, customer: Obj) -> str:
    type_id = _ref_value(customer, "CustomerTypeRef")
    if type_id is None:
        return ""
    ctype = realm.get("CustomerType", type_id)
    if ctype and ctype.get("Name"):
        return str(ctype["Name"])
    ref = customer.get("CustomerTypeRef") or {}
    return str(ref.get("name") or type_id)


def _voided(txn: Obj) -> bool:
    return _num(txn.get("TotalAmt")) == 0 and str(txn.get("PrivateNote") or "").startswith("Voided")


def _label(customer: Obj) -> str:
    return str(customer.get("FullyQualifiedName") or customer.get("DisplayName") or "")


def _id_key(obj: Obj) -> tuple[int, str]:
    raw = str(obj.get("Id") or "")
    return (int(raw), raw) if raw.isdigit() else (0, raw)


# The form body is a few short fields; anything larger is not our form.
_FORM_LIMIT = 4096


class WebUI:
    def __init__(self, sandbox: Sandbox, control_token: str | None = None) -> None:
        self.sb = sandbox
        self.control_token = control_token
        # Signs the merge form's CSRF token; a restart makes open forms stale, which is fine.
        self._secret = secrets.token_bytes(32)

    def _csrf(self, realm: Realm, customer_id: str, action: str) -> str:
        """The token of one form (action) on one customer's page: valid for nothing else."""
        msg = f"{action}|{realm.realm_id}|{customer_id}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/app", self.companies, methods=["GET"]),
            Route("/app/", self.companies, methods=["GET"]),
            Route("/app/customers", self.customers, methods=["GET"]),
            Route("/app/customerdetail", self.customer_detail, methods=["GET"]),
            Route("/app/customerdetail/merge", self.merge_customer, methods=["POST"]),
            Route("/app/customerdetail/active", self.set_active, methods=["POST"]),
            Route("/app/invoice", self.invoice, methods=["GET"]),
            Route("/app/recvpayment", self.payment, methods=["GET"]),
            Route("/app/items", self.items, methods=["GET"]),
        ]

    def _realm(self, request: Request) -> tuple[Realm | None, Response | None]:
        realm_id = request.query_params.get("realmId", "")
        if not realm_id:
            return None, _not_found("Company not found", "The link has no realmId.")
        realm = self.sb.realms.get(realm_id)
        if realm is None:
            return None, _not_found("Company not found", f"There is no sandbox company {realm_id}.")
        return realm, None

    def _crumbs(self, realm: Realm | None = None, customers: bool = False) -> str:
        parts = ['<a href="/app/">Companies</a>']
        if realm is not None:
            parts.append(e(_company_name(realm)))
            if customers:
                parts[-1] = f'<a href="{_customers_href(realm)}">{parts[-1]}</a>'
        return '<nav class="crumbs">' + " › ".join(parts) + "</nav>"

    # ---------------------------------------------------------------- pages

    async def companies(self, request: Request) -> Response:
        realms = sorted(self.sb.realms.values(), key=lambda r: (_company_name(r).lower(), r.realm_id))
        if realms:
            rows = "".join(
                f'<tr><td><a href="{_customers_href(r)}">{e(_company_name(r))}</a></td>'
                f'<td class="rid">{e(r.realm_id)}</td><td>{e(r.seed)}</td>'
                f'<td class="num">{len(r.data.get("Customer", {}))}</td></tr>'
                for r in realms
            )
            table = (
                "<table><thead><tr><th>Company</th><th>Realm ID</th><th>Seed</th>"
                f'<th class="num">Customers</th></tr></thead><tbody>{rows}</tbody></table>'
            )
        else:
            table = '<p class="empty">No companies yet.</p>'
        body = f'<h1>Companies</h1><p class="sub">Every company (realm) in this sandbox.</p>{table}'
        return _page("Companies", body)

    async def customers(self, request: Request) -> Response:
        realm, missing = self._realm(request)
        if realm is None:
            assert missing is not None
            return missing
        customers = sorted(
            realm.data.get("Customer", {}).values(),
            key=lambda c: (
                str(c.get("FullyQualifiedName") or c.get("DisplayName") or "").lower(),
                _id_key(c),
            ),
        )
        active = sum(1 for c in customers if _active(c))
        if customers:
            rows = "".join(
                "<tr>"
                f'<td><a href="{_detail_href(realm, c.get("Id"))}">'
                f"{e(c.get('FullyQualifiedName') or c.get('DisplayName'))}</a></td>"
                f"<td>{e(c.get('CompanyName'))}</td><td>{e(_email(c))}</td>"
                f"<td>{e(_phone(c, 'PrimaryPhone'))}</td>"
                f'<td class="num">{e(money(c.get("Balance"), _currency(c)))}</td>'
                f"<td>{_badge(_active(c))}</td></tr>"
                for c in customers
            )
            table = (
                "<table><thead><tr><th>Customer</th><th>Company</th><th>Email</th><th>Phone</th>"
                f'<th class="num">Open balance</th><th>Status</th></tr></thead><tbody>{rows}</tbody></table>'
            )
        else:
            table = '<p class="empty">No customers.</p>'
        body = (
            f"{self._crumbs(realm)}<h1>Customers</h1>"
            f'<p class="sub">{len(customers)} customers: {active} active, '
            f"{len(customers) - active} inactive.</p>"
            f"{table}"
        )
        return _page(f"Customers · {_company_name(realm)}", body)

    async def customer_detail(self, request: Request) -> Response:
        realm, missing = self._realm(request)
        if realm is None:
            assert missing is not None
            return missing
        name_id = request.query_params.get("nameId", "")
        customer = realm.get("Customer", name_id) if name_id else None
        if customer is None:
            return self._customer_missing(realm, name_id)
        notice = ""
        merged_id = request.query_params.get("merged", "")
        done = request.query_params.get("done", "")
        if realm.merged.get("Customer", {}).get(merged_id) == name_id:
            notice = (
                f'<p class="notice" role="status">Customer {e(merged_id)} was merged into this '
                "customer: its transactions are listed here and it has been deleted.</p>"
            )
        elif done in ("inactive", "active") and _active(customer) == (done == "active"):
            # Said only while it is true, so a stale or hand-made link can't claim it.
            notice = f'<p class="notice" role="status">This customer is now {done}.</p>'
        return self._customer_page(realm, customer, notice=notice)

    def _customer_missing(self, realm: Realm, name_id: str) -> Response:
        survivor_id = realm.merged.get("Customer", {}).get(name_id) if name_id else None
        if survivor_id is not None:
            # Follow the chain: the survivor may itself have been merged since.
            seen = {name_id}
            while survivor_id in realm.merged.get("Customer", {}) and survivor_id not in seen:
                seen.add(survivor_id)
                survivor_id = realm.merged["Customer"][survivor_id]
            survivor = realm.get("Customer", survivor_id) or {}
            label = e(survivor.get("DisplayName") or survivor_id)
            link = f'<a href="{_detail_href(realm, survivor_id)}">{label}</a>'
            body = (
                f"{self._crumbs(realm, customers=True)}<h1>Customer merged</h1>"
                f'<p class="sub">Customer {e(name_id)} was merged into {link} and no longer exists.</p>'
            )
            return _page("Customer merged", body, 404)
        return _not_found(
            "Customer not found",
            f"{_company_name(realm)} has no customer with id {name_id}."
            if name_id
            else "The link has no nameId.",
        )

    def _customer_page(
        self,
        realm: Realm,
        customer: Obj,
        *,
        notice: str = "",
        error: str = "",
        error_at: str = "merge",
        status: int = 200,
    ) -> Response:
        cur = _currency(customer)
        fields: list[tuple[str, str]] = [
            ("Display name", e(customer.get("DisplayName"))),
            ("Company", e(customer.get("CompanyName"))),
            ("Customer type", e(_customer_type(realm, customer))),
            ("Email", e(_email(customer))),
            ("Phone", e(_phone(customer, "PrimaryPhone"))),
            ("Mobile", e(_phone(customer, "Mobile"))),
            ("Billing address", e(_address(customer.get("BillAddr")))),
        ]
        ship = _address(customer.get("ShipAddr"))
        if ship and ship != _address(customer.get("BillAddr")):
            fields.append(("Shipping address", e(ship)))
        parent_id = _ref_value(customer, "ParentRef")
        if parent_id is not None:
            parent = realm.get("Customer", parent_id)
            label = (parent or {}).get("DisplayName") or parent_id
            link = _detail_href(realm, parent_id)
            fields.append(("Sub-customer of", f'<a href="{link}">{e(label)}</a>'))
        fields.append(("Status", _badge(_active(customer))))
        fields.append(("Open balance", e(money(customer.get("Balance"), cur))))
        if _num(customer.get("BalanceWithJobs")) != _num(customer.get("Balance")):
            fields.append(("Balance with sub-customers", e(money(customer.get("BalanceWithJobs"), cur))))
        fields.append(("Customer ID", e(customer.get("Id"))))
        dl = "".join(f"<dt>{label}</dt><dd>{value or '—'}</dd>" for label, value in fields)
        body = (
            f"{self._crumbs(realm, customers=True)}"
            f"<h1>{e(customer.get('DisplayName'))}</h1>"
            f'<p class="sub">{e(_company_name(realm))} '
            f'<span class="rid">(realm {e(realm.realm_id)})</span></p>'
            f"{notice}"
            f'<dl class="fields">{dl}</dl>'
            f"{self._status_form(realm, customer, error if error_at == 'active' else '')}"
            f"{self._invoices(realm, customer)}{self._payments(realm, customer)}"
            f"{self._merge_form(realm, customer, error if error_at == 'merge' else '')}"
        )
        return _page(str(customer.get("DisplayName") or "Customer"), body, status)

    def _merge_form(self, realm: Realm, customer: Obj, error: str) -> str:
        cid = str(customer.get("Id"))
        name = e(customer.get("DisplayName"))
        heading = "<h2>Merge into another customer</h2>"
        problem = f'<p class="problem" role="alert">{e(error)}</p>' if error else ""
        cur = _currency(customer)
        # Only customers a merge could go to: active, same currency, not this one's sub-customers.
        choices = sorted(
            (
                c
                for c in realm.data.get("Customer", {}).values()
                if str(c.get("Id")) != cid
                and _active(c)
                and _currency(c) == cur
                and cid not in merge.ancestors(realm, "Customer", c)
            ),
            key=lambda c: (_label(c).lower(), _id_key(c)),
        )
        if not choices:
            return f'{heading}{problem}<p class="empty">No other active customer to merge into.</p>'
        options = "".join(f'<option value="{e(c.get("Id"))}">{e(_label(c))}</option>' for c in choices)
        token_field = self._token_field("merge")
        action = _href("/app/customerdetail/merge", nameId=cid, realmId=realm.realm_id)
        return (
            f"{heading}{problem}"
            f'<form class="act merge" method="post" action="{action}">'
            f'<input type="hidden" name="csrf" value="{e(self._csrf(realm, cid, "merge"))}">'
            '<label for="merge-into">Merge into…</label>'
            '<select id="merge-into" name="into_id" required aria-describedby="merge-help">'
            f'<option value="">Choose the customer to keep</option>{options}</select>'
            f'<p id="merge-help">As in QuickBooks: every transaction of {name} moves to the customer '
            f"you choose, {name} is deleted and apps get a Merge notification. This can't be undone.</p>"
            f"{token_field}"
            '<button type="submit">Merge</button></form>'
        )

    def _token_field(self, action: str) -> str:
        """The control token input, when the sandbox has one (it listens beyond loopback)."""
        if not self.control_token:
            return ""
        return (
            f'<label for="{action}-control-token">Control token</label>'
            f'<input type="password" id="{action}-control-token" name="control_token" required '
            f'autocomplete="off" aria-describedby="{action}-control-help">'
            f'<p id="{action}-control-help">This sandbox listens beyond this computer, so changing '
            "a company here needs its control token (the one the control plane asks for).</p>"
        )

    def _status_form(self, realm: Realm, customer: Obj, error: str) -> str:
        """QBO's "Make inactive" / "Make active" (its "delete" of a customer is Active=false)."""
        cid = str(customer.get("Id"))
        active = _active(customer)
        label = "Make inactive" if active else "Make active"
        help_text = (
            "As in QuickBooks: an inactive customer leaves the lists and can't be used on new "
            "transactions; apps get a notification (Delete, as the sandbox sends for deactivations)."
            if active
            else "Makes the customer usable again; apps get an Update notification."
        )
        problem = f'<p class="problem" role="alert">{e(error)}</p>' if error else ""
        action = _href("/app/customerdetail/active", nameId=cid, realmId=realm.realm_id)
        return (
            f"{problem}"
            f'<form class="act status" method="post" action="{action}" aria-label="{label}">'
            f'<input type="hidden" name="csrf" value="{e(self._csrf(realm, cid, "active"))}">'
            f'<input type="hidden" name="active" value="{"false" if active else "true"}">'
            f'<p id="active-help">{help_text}</p>'
            f"{self._token_field('active')}"
            f'<button type="submit" aria-describedby="active-help">{label}</button></form>'
        )

    async def _posted(
        self, request: Request, action: str
    ) -> tuple[Realm | None, Obj | None, dict[str, str], Response | None]:
        """The realm, customer and form fields of a POST from one of the customer page's forms, or
        the answer that refuses it (unknown customer, body too large, bad CSRF or control token)."""
        realm, missing = self._realm(request)
        if realm is None:
            return None, None, {}, missing
        name_id = request.query_params.get("nameId", "")
        customer = realm.get("Customer", name_id) if name_id else None
        if customer is None:
            return realm, None, {}, self._customer_missing(realm, name_id)
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > _FORM_LIMIT:
                refusal = self._customer_page(
                    realm, customer, error="The form was too large.", error_at=action, status=413
                )
                return realm, customer, {}, refusal
        fields = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        error = ""
        if not hmac.compare_digest(fields.get("csrf", ""), self._csrf(realm, name_id, action)):
            error = "The form has expired. Reload the page and try again."
        elif self.control_token is not None and not hmac.compare_digest(
            fields.get("control_token", "").encode(), self.control_token.encode()
        ):
            error = "The control token is missing or wrong."
        if error:
            return (
                realm,
                customer,
                fields,
                self._customer_page(realm, customer, error=error, error_at=action, status=403),
            )
        return realm, customer, fields, None

    async def set_active(self, request: Request) -> Response:
        realm, customer, fields, refusal = await self._posted(request, "active")
        if refusal is not None:
            return refusal
        assert realm is not None and customer is not None
        wanted = fields.get("active", "")
        if wanted not in ("true", "false"):
            return self._customer_page(
                realm,
                customer,
                error="Say whether to make it active or inactive.",
                error_at="active",
                status=400,
            )
        body = {"Id": customer["Id"], "SyncToken": customer.get("SyncToken", "0"), "sparse": True}
        body["Active"] = wanted == "true"
        try:
            # The API's own rules (a customer with an open balance can't be made inactive: 6000).
            realm.update("Customer", body)
        except errors.QBOError as exc:
            return self._customer_page(
                realm, customer, error=f"Not changed: {exc.detail}", error_at="active", status=400
            )
        self.sb.dirty = True
        done = "active" if wanted == "true" else "inactive"
        query = urlencode({"nameId": customer["Id"], "realmId": realm.realm_id, "done": done})
        return RedirectResponse(f"/app/customerdetail?{query}", status_code=303, headers=_HEADERS)

    async def merge_customer(self, request: Request) -> Response:
        realm, customer, fields, refusal = await self._posted(request, "merge")
        if refusal is not None:
            return refusal
        assert realm is not None and customer is not None
        name_id = str(customer["Id"])
        into_id = fields.get("into_id", "").strip()
        if not into_id:
            return self._customer_page(
                realm, customer, error="Choose the customer to merge into.", status=400
            )
        try:
            merge.merge(realm, "Customer", name_id, into_id)
        except merge.MergeError as exc:
            return self._customer_page(realm, customer, error=f"Not merged: {exc}.", status=400)
        self.sb.dirty = True
        # Post/redirect/get: a reload of the survivor's page must not post again.
        query = urlencode({"nameId": into_id, "realmId": realm.realm_id, "merged": name_id})
        return RedirectResponse(f"/app/customerdetail?{query}", status_code=303, headers=_HEADERS)

    def _txn(
        self, request: Request, entity: str, title: str
    ) -> tuple[Realm | None, Obj | None, Response | None]:
        realm, missing = self._realm(request)
        if realm is None:
            return None, None, missing
        txn_id = request.query_params.get("txnId", "")
        txn = realm.get(entity, txn_id) if txn_id else None
        if txn is None:
            return (
                realm,
                None,
                _not_found(
                    f"{title} not found",
                    f"{_company_name(realm)} has no {title.lower()} with id {txn_id}."
                    if txn_id
                    else "The link has no txnId.",
                ),
            )
        return realm, txn, None

    def _sub(self, realm: Realm) -> str:
        rid = e(realm.realm_id)
        return f'<p class="sub">{e(_company_name(realm))} <span class="rid">(realm {rid})</span></p>'

    def _customer_link(self, realm: Realm, txn: Obj) -> str:
        cid = _ref_value(txn, "CustomerRef")
        if cid is None:
            return ""
        customer = realm.get("Customer", cid)
        label = (customer or {}).get("DisplayName") or (txn.get("CustomerRef") or {}).get("name") or cid
        return f'<a href="{_detail_href(realm, cid)}">{e(label)}</a>'

    async def invoice(self, request: Request) -> Response:
        realm, inv, missing = self._txn(request, "Invoice", "Invoice")
        if realm is None or inv is None:
            assert missing is not None
            return missing
        cur = _currency(inv)
        number = inv.get("DocNumber") or inv.get("Id")
        status = " (voided)" if _voided(inv) else ""
        fields: list[tuple[str, str]] = [
            ("Customer", self._customer_link(realm, inv)),
            ("Invoice no.", e(inv.get("DocNumber"))),
            ("Invoice date", e(inv.get("TxnDate"))),
            ("Due date", e(inv.get("DueDate"))),
            ("Total", e(money(inv.get("TotalAmt"), cur))),
            ("Balance due", e(money(inv.get("Balance"), cur))),
        ]
        tax = (
            (inv.get("TxnTaxDetail") or {}).get("TotalTax")
            if isinstance(inv.get("TxnTaxDetail"), dict)
            else None
        )
        if _num(tax):
            fields.append(("Sales tax", e(money(tax, cur))))
        for label, key in (("Class", "ClassRef"), ("Location", "DepartmentRef")):
            ref = inv.get(key)
            if isinstance(ref, dict) and (ref.get("name") or ref.get("value")):
                fields.append((label, e(ref.get("name") or ref.get("value"))))
        if inv.get("PrivateNote"):
            fields.append(("Private note", e(inv.get("PrivateNote"))))
        fields.append(("Invoice ID", e(inv.get("Id"))))
        rows = []
        for line in inv.get("Line") or []:
            if not isinstance(line, dict) or line.get("DetailType") != "SalesItemLineDetail":
                continue
            detail = line.get("SalesItemLineDetail") or {}
            item_id = _ref_value(detail, "ItemRef")
            item = realm.get("Item", item_id) if item_id else None
            item_name = (item or {}).get("Name") or (detail.get("ItemRef") or {}).get("name") or item_id
            rows.append(
                f"<tr><td>{e(item_name)}</td><td>{e(line.get('Description'))}</td>"
                f'<td class="num">{e(detail.get("Qty"))}</td>'
                f'<td class="num">{e(money(detail.get("UnitPrice"), cur))}</td>'
                f'<td class="num">{e(money(line.get("Amount"), cur))}</td></tr>'
            )
        lines = (
            "<h2>Lines</h2><table><thead><tr><th>Product/service</th><th>Description</th>"
            '<th class="num">Qty</th><th class="num">Rate</th><th class="num">Amount</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>"
            if rows
            else '<h2>Lines</h2><p class="empty">No lines.</p>'
        )
        dl = "".join(f"<dt>{label}</dt><dd>{value or '—'}</dd>" for label, value in fields)
        body = (
            f"{self._crumbs(realm, customers=True)}"
            f"<h1>Invoice {e(number)}{e(status)}</h1>"
            f"{self._sub(realm)}"
            f'<dl class="fields">{dl}</dl>{lines}{self._invoice_payments(realm, inv)}'
        )
        return _page(f"Invoice {number}", body)

    def _invoice_payments(self, realm: Realm, inv: Obj) -> str:
        inv_id = str(inv.get("Id"))
        rows = []
        for pay in sorted(realm.data.get("Payment", {}).values(), key=_id_key):
            for line in pay.get("Line") or []:
                if not isinstance(line, dict):
                    continue
                if any(
                    isinstance(lt, dict) and lt.get("TxnType") == "Invoice" and str(lt.get("TxnId")) == inv_id
                    for lt in line.get("LinkedTxn") or []
                ):
                    href = _href("/app/recvpayment", txnId=str(pay.get("Id")), realmId=realm.realm_id)
                    rows.append(
                        f'<tr><td><a href="{href}">{e(pay.get("TxnDate"))}</a></td>'
                        f"<td>{e(pay.get('PaymentRefNum'))}</td>"
                        f'<td class="num">{e(money(line.get("Amount"), _currency(pay)))}</td></tr>'
                    )
        if not rows:
            return '<h2>Payments</h2><p class="empty">No payments applied.</p>'
        return (
            "<h2>Payments</h2><table><thead><tr><th>Date</th><th>Ref no.</th>"
            f'<th class="num">Applied</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
        )

    async def payment(self, request: Request) -> Response:
        realm, pay, missing = self._txn(request, "Payment", "Payment")
        if realm is None or pay is None:
            assert missing is not None
            return missing
        cur = _currency(pay)
        deposit = pay.get("DepositToAccountRef")
        deposit_name = ""
        if isinstance(deposit, dict) and deposit.get("value"):
            account = realm.get("Account", str(deposit["value"]))
            deposit_name = str((account or {}).get("Name") or deposit.get("name") or deposit["value"])
        status = " (voided)" if _voided(pay) else ""
        fields: list[tuple[str, str]] = [
            ("Customer", self._customer_link(realm, pay)),
            ("Payment date", e(pay.get("TxnDate"))),
            ("Reference no.", e(pay.get("PaymentRefNum"))),
            ("Deposit to", e(deposit_name)),
            ("Amount received", e(money(pay.get("TotalAmt"), cur))),
            ("Unapplied", e(money(pay.get("UnappliedAmt"), cur))),
        ]
        if pay.get("PrivateNote"):
            fields.append(("Memo", e(pay.get("PrivateNote"))))
        fields.append(("Payment ID", e(pay.get("Id"))))
        invoices = realm.data.get("Invoice", {})
        rows = []
        for line in pay.get("Line") or []:
            if not isinstance(line, dict):
                continue
            for link in line.get("LinkedTxn") or []:
                if not isinstance(link, dict):
                    continue
                txn_id = str(link.get("TxnId"))
                if link.get("TxnType") == "Invoice":
                    inv = invoices.get(txn_id) or {}
                    href = _href("/app/invoice", txnId=txn_id, realmId=realm.realm_id)
                    label = f'<a href="{href}">Invoice {e(inv.get("DocNumber") or txn_id)}</a>'
                    extra = (
                        f"<td>{e(inv.get('DueDate'))}</td>"
                        f'<td class="num">{e(money(inv.get("TotalAmt"), cur))}</td>'
                        f'<td class="num">{e(money(inv.get("Balance"), cur))}</td>'
                    )
                else:
                    label = e(f"{link.get('TxnType')} {txn_id}")
                    extra = "<td></td><td></td><td></td>"
                amount = e(money(line.get("Amount"), cur))
                rows.append(f'<tr><td>{label}</td>{extra}<td class="num">{amount}</td></tr>')
        lines = (
            "<h2>Applied to</h2><table><thead><tr><th>Transaction</th><th>Due date</th>"
            '<th class="num">Original amount</th><th class="num">Open balance</th>'
            f'<th class="num">Payment</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
            if rows
            else '<h2>Applied to</h2><p class="empty">Not applied to any transaction.</p>'
        )
        dl = "".join(f"<dt>{label}</dt><dd>{value or '—'}</dd>" for label, value in fields)
        body = (
            f"{self._crumbs(realm, customers=True)}"
            f"<h1>Payment received{e(status)}</h1>"
            f"{self._sub(realm)}"
            f'<dl class="fields">{dl}</dl>{lines}'
        )
        return _page("Payment received", body)

    async def items(self, request: Request) -> Response:
        realm, missing = self._realm(request)
        if realm is None:
            assert missing is not None
            return missing
        items = sorted(
            realm.data.get("Item", {}).values(),
            key=lambda i: (str(i.get("FullyQualifiedName") or i.get("Name") or "").lower(), _id_key(i)),
        )
        accounts = realm.data.get("Account", {})
        rows = []
        for item in items:
            income_id = _ref_value(item, "IncomeAccountRef")
            income = (accounts.get(income_id) or {}).get("Name") if income_id else ""
            name = e(item.get("FullyQualifiedName") or item.get("Name"))
            rows.append(
                f'<tr id="item-{e(item.get("Id"))}"><td>{name}</td>'
                f"<td>{e(item.get('Type'))}</td><td>{e(item.get('Description'))}</td>"
                f'<td class="num">{e(money(item.get("UnitPrice")))}</td><td>{e(income)}</td>'
                f"<td>{'Yes' if item.get('Taxable') else 'No'}</td>"
                f"<td>{_badge(_active(item))}</td></tr>"
            )
        table = (
            "<table><thead><tr><th>Name</th><th>Type</th><th>Description</th>"
            '<th class="num">Price</th><th>Income account</th><th>Taxable</th><th>Status</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>"
            if rows
            else '<p class="empty">No products or services.</p>'
        )
        body = (
            f"{self._crumbs(realm)}<h1>Products and services</h1>"
            f'<p class="sub">{len(items)} items in {e(_company_name(realm))}.</p>{table}'
        )
        return _page(f"Products and services · {_company_name(realm)}", body)

    # ---------------------------------------------------------------- tables

    def _invoices(self, realm: Realm, customer: Obj) -> str:
        cid = str(customer.get("Id"))
        today = clock.today()
        invoices = sorted(
            (
                inv
                for inv in realm.data.get("Invoice", {}).values()
                if _ref_value(inv, "CustomerRef") == cid and _num(inv.get("Balance")) > 0
            ),
            key=lambda inv: (str(inv.get("TxnDate") or ""), _id_key(inv)),
        )
        if not invoices:
            return '<h2>Open invoices</h2><p class="empty">No open invoices.</p>'
        rows = []
        for inv in invoices:
            due = str(inv.get("DueDate") or "")
            overdue = ' <span class="badge overdue">Overdue</span>' if due and due < today else ""
            rows.append(
                f"<tr><td>{e(inv.get('DocNumber') or inv.get('Id'))}</td><td>{e(inv.get('TxnDate'))}</td>"
                f"<td>{e(due)}{overdue}</td>"
                f'<td class="num">{e(money(inv.get("TotalAmt"), _currency(inv)))}</td>'
                f'<td class="num">{e(money(inv.get("Balance"), _currency(inv)))}</td></tr>'
            )
        return (
            "<h2>Open invoices</h2><table><thead><tr><th>No.</th><th>Date</th><th>Due date</th>"
            f'<th class="num">Total</th><th class="num">Balance</th></tr></thead><tbody>{"".join(rows)}'
            "</tbody></table>"
        )

    def _payments(self, realm: Realm, customer: Obj) -> str:
        cid = str(customer.get("Id"))
        payments = sorted(
            (p for p in realm.data.get("Payment", {}).values() if _ref_value(p, "CustomerRef") == cid),
            key=lambda p: (str(p.get("TxnDate") or ""), _id_key(p)),
            reverse=True,
        )
        if not payments:
            return '<h2>Payments</h2><p class="empty">No payments.</p>'
        invoices = realm.data.get("Invoice", {})
        rows = []
        for pay in payments:
            applied = []
            for line in pay.get("Line") or []:
                if not isinstance(line, dict):
                    continue
                for link in line.get("LinkedTxn") or []:
                    if isinstance(link, dict) and link.get("TxnType") == "Invoice":
                        inv = invoices.get(str(link.get("TxnId")))
                        applied.append(str((inv or {}).get("DocNumber") or link.get("TxnId")))
            status = ' <span class="badge inactive">Voided</span>' if _voided(pay) else ""
            rows.append(
                f"<tr><td>{e(pay.get('TxnDate'))}{status}</td><td>{e(pay.get('PaymentRefNum'))}</td>"
                f"<td>{e(', '.join(applied))}</td>"
                f'<td class="num">{e(money(pay.get("TotalAmt"), _currency(pay)))}</td>'
                f'<td class="num">{e(money(pay.get("UnappliedAmt"), _currency(pay)))}</td></tr>'
            )
        return (
            "<h2>Payments</h2><table><thead><tr><th>Date</th><th>Ref no.</th><th>Applied to invoices</th>"
            f'<th class="num">Amount</th><th class="num">Unapplied</th></tr></thead><tbody>{"".join(rows)}'
            "</tbody></table>"
        )
