"""Client accounts over the API: list, read, create, update, archive, their QuickBooks history
and account sync actions (sync, link, reactivate, create customer, unsync). Split out of api.py
unchanged; the helpers and shared schemas stay there."""

from __future__ import annotations

import datetime
from typing import Any, Literal

from django.http import HttpRequest
from django.urls import reverse
from ninja import Query, Schema, Status
from pydantic import Field

from practice.api.api import (
    ACTION_ERRORS,
    ERRORS,
    ApiProblem,
    ObjectId,
    PageFilters,
    QuickBooksOut,
    StrictIn,
    _actor,
    _firm,
    _links,
    _page_of,
    _quickbooks,
    _require_connected,
    _require_manager,
    _status_filter,
    accounts,
)
from practice.clients import selectors as client_selectors
from practice.clients import services as client_services
from practice.clients.models import ClientAccount
from practice.quickbooks import actions as qbo_actions
from practice.quickbooks.models import Connection, SyncLink
from practice.quickbooks.selectors import KIND as CUSTOMER_KIND
from practice.quickbooks.selectors import attempt_history

# ---------------------------------------------------------------- accounts


class AccountOut(Schema):
    id: int
    name: str
    kind: str
    email: str
    phone: str
    address_line1: str
    city: str
    region: str
    postal_code: str
    country: str
    archived: bool
    created_at: datetime.datetime
    updated_at: datetime.datetime
    quickbooks: QuickBooksOut


class AccountPage(Schema):
    items: list[AccountOut]
    total: int
    page: int
    next_page: int | None


# Close to Django's EmailValidator (which still has the last word), so the documented schema does not
# promise to accept addresses the service then refuses.
EMAIL_PATTERN = (
    r"^$|^[A-Za-z0-9_%+-]+(\.[A-Za-z0-9_%+-]+)*"
    r"@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)

# A Literal, not the TextChoices enum: strict mode would refuse the plain JSON string for an enum.
KindLiteral = Literal["individual", "company"]


class AccountIn(StrictIn):
    name: str = Field(min_length=1, max_length=500)
    kind: KindLiteral = "individual"
    email: str = Field("", max_length=254, pattern=EMAIL_PATTERN)
    phone: str = Field("", max_length=30)
    address_line1: str = Field("", max_length=500)
    city: str = Field("", max_length=255)
    region: str = Field("", max_length=255)
    postal_code: str = Field("", max_length=30)
    country: str = Field("", max_length=255)


class AccountPatch(StrictIn):
    # Omitted = unchanged (exclude_unset); typed without None so an explicit null is a 422.
    name: str = Field(None, min_length=1, max_length=500)  # type: ignore[assignment]
    kind: KindLiteral = Field(None)  # type: ignore[arg-type]
    email: str = Field(None, max_length=254, pattern=EMAIL_PATTERN)  # type: ignore[assignment]
    phone: str = Field(None, max_length=30)  # type: ignore[assignment]
    address_line1: str = Field(None, max_length=500)  # type: ignore[assignment]
    city: str = Field(None, max_length=255)  # type: ignore[assignment]
    region: str = Field(None, max_length=255)  # type: ignore[assignment]
    postal_code: str = Field(None, max_length=30)  # type: ignore[assignment]
    country: str = Field(None, max_length=255)  # type: ignore[assignment]


def _account_out(
    account: ClientAccount, connection: Connection | None, link: SyncLink | None
) -> dict[str, Any]:
    data = {f: getattr(account, f) for f in AccountOut.model_fields if f != "quickbooks"}
    history = reverse("api-v1:account_history", kwargs={"account_id": account.pk})
    data["quickbooks"] = _quickbooks(link, connection, account.name, history)
    return data


def _one_account(request: HttpRequest, account: ClientAccount) -> dict[str, Any]:
    connection, links = _links(_firm(request), CUSTOMER_KIND, [account.pk])
    return _account_out(account, connection, links.get(account.pk))


class AccountFilters(PageFilters):
    include_archived: bool = False
    search: str = Field("", max_length=200)


@accounts.get("", response={200: AccountPage, **ERRORS}, url_name="account_list")
def account_list(request: HttpRequest, filters: Query[AccountFilters]) -> Any:
    firm = _firm(request)
    qs = client_selectors.account_list(
        firm=firm, search=filters.search, include_archived=filters.include_archived
    )
    qs = _status_filter(qs, firm, CUSTOMER_KIND, filters.quickbooks_status)
    items, total, next_page = _page_of(qs, filters)
    connection, links = _links(firm, CUSTOMER_KIND, [a.pk for a in items])
    return {
        "items": [_account_out(a, connection, links.get(a.pk)) for a in items],
        "total": total,
        "page": filters.page,
        "next_page": next_page,
    }


@accounts.post("", response={201: AccountOut, **ERRORS}, url_name="account_create")
def account_create(request: HttpRequest, payload: AccountIn) -> Any:
    account = client_services.account_create(firm=_firm(request), **payload.model_dump())
    return Status(201, _one_account(request, account))


def _account(request: HttpRequest, account_id: int) -> ClientAccount:
    return client_selectors.account_get(firm=_firm(request), pk=account_id)


@accounts.get("/{account_id}", response={200: AccountOut, **ERRORS}, url_name="account_get")
def account_get(request: HttpRequest, account_id: int = ObjectId) -> Any:
    return _one_account(request, _account(request, account_id))


@accounts.patch("/{account_id}", response={200: AccountOut, **ERRORS}, url_name="account_update")
def account_update(request: HttpRequest, payload: AccountPatch, account_id: int = ObjectId) -> Any:
    account = _account(request, account_id)
    changes = payload.model_dump(exclude_unset=True)
    client_services.account_update(account=account, **changes)
    return _one_account(request, account)


@accounts.post("/{account_id}/archive", response={200: AccountOut, **ERRORS}, url_name="account_archive")
def account_archive(request: HttpRequest, account_id: int = ObjectId) -> Any:
    _require_manager(request)
    account = client_services.account_archive(account=_account(request, account_id))
    return _one_account(request, account)


@accounts.post("/{account_id}/unarchive", response={200: AccountOut, **ERRORS}, url_name="account_unarchive")
def account_unarchive(request: HttpRequest, account_id: int = ObjectId) -> Any:
    _require_manager(request)
    account = client_services.account_unarchive(account=_account(request, account_id))
    return _one_account(request, account)


class AttemptOut(Schema):
    at: datetime.datetime
    operation: str
    outcome: str
    message: str


@accounts.get("/{account_id}/history", response={200: list[AttemptOut], **ERRORS}, url_name="account_history")
def account_history(request: HttpRequest, account_id: int = ObjectId) -> Any:
    account = _account(request, account_id)
    return [
        {"at": a.created_at, "operation": a.operation, "outcome": a.outcome, "message": a.message or ""}
        for a in attempt_history(firm=_firm(request), account=account)
    ]


class LinkIn(StrictIn):
    customer_id: str = Field(min_length=1, max_length=32, pattern=r"^[0-9]+$")
    confirm: bool = Field(False, description="Link even if another account is linked to this customer.")


class ReactivateIn(StrictIn):
    customer_id: str | None = Field(
        None,
        min_length=1,
        max_length=32,
        pattern=r"^[0-9]+$",
        description="Default: the inactive match found.",
    )


class CreateCustomerIn(StrictIn):
    name: str = Field(min_length=1, max_length=500)


@accounts.post("/{account_id}/sync", response={202: AccountOut, **ACTION_ERRORS}, url_name="account_sync")
def account_sync(request: HttpRequest, account_id: int = ObjectId) -> Any:
    """Sync again (retry): the account is matched by name, or resumes its link."""
    _require_manager(request)
    account = _account(request, account_id)
    qbo_actions.account_sync_retry(firm=_firm(request), account=account, actor=_actor(request))
    return Status(202, _one_account(request, account))


@accounts.post("/{account_id}/link", response={202: AccountOut, **ACTION_ERRORS}, url_name="account_link")
def account_link(request: HttpRequest, payload: LinkIn, account_id: int = ObjectId) -> Any:
    """Link to a given QBO customer id."""
    _require_manager(request)
    account = _account(request, account_id)
    _require_connected(request)
    result = qbo_actions.account_sync_link(
        firm=_firm(request),
        account=account,
        customer_id=payload.customer_id,
        actor=_actor(request),
        confirmed=payload.confirm,
    )
    if isinstance(result, qbo_actions.LinkCheck):
        names = ", ".join(a.name for a in result.linked_to)
        raise ApiProblem(
            409,
            "already_linked",
            f"This QuickBooks customer is already linked to {names}. Send confirm: true to link it here too.",
            field="customer_id",
        )
    return Status(202, _one_account(request, account))


@accounts.post(
    "/{account_id}/reactivate", response={202: AccountOut, **ACTION_ERRORS}, url_name="account_reactivate"
)
def account_reactivate(request: HttpRequest, payload: ReactivateIn, account_id: int = ObjectId) -> Any:
    """Reactivate an inactive QBO customer and link the account to it."""
    _require_manager(request)
    account = _account(request, account_id)
    _require_connected(request)
    qbo_actions.account_sync_reactivate(
        firm=_firm(request), account=account, customer_id=payload.customer_id, actor=_actor(request)
    )
    return Status(202, _one_account(request, account))


@accounts.post(
    "/{account_id}/create-customer",
    response={202: AccountOut, **ACTION_ERRORS},
    url_name="account_create_customer",
)
def account_create_customer(
    request: HttpRequest, payload: CreateCustomerIn, account_id: int = ObjectId
) -> Any:
    _require_manager(request)
    account = _account(request, account_id)
    qbo_actions.account_sync_create(
        firm=_firm(request), account=account, name=payload.name, actor=_actor(request)
    )
    return Status(202, _one_account(request, account))


@accounts.post("/{account_id}/unsync", response={202: AccountOut, **ACTION_ERRORS}, url_name="account_unsync")
def account_unsync(request: HttpRequest, account_id: int = ObjectId) -> Any:
    _require_manager(request)
    account = _account(request, account_id)
    qbo_actions.account_unsync(firm=_firm(request), account=account, actor=_actor(request))
    return Status(202, _one_account(request, account))
