"""The "service" record kind: the firm's services as QBO Items of type Service.

Which services sync: every service of a connected, set-up firm that is not archived (a firm
has a few dozen at most, and an invoice can only reach QuickBooks once each of its services
has), plus archived ones already linked, which are made inactive. An archived service that
was never linked is not created.

Each service is matched by name (normalised like customers) against the realm's Items, read
once per run; else created with the service's income account override or the connection's
income account. Once linked, a rename in the app renames the item and archiving makes it
inactive (sparse updates). Importing this module registers the kind (order 20).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from practice.billing.models import Service
from practice.quickbooks.connection.client import quote
from practice.quickbooks.connection.errors import RecordRejected, RequestRefused
from practice.quickbooks.models import SyncLink
from practice.quickbooks.statuses import Outcome, SyncStatus
from practice.quickbooks.sync import engine
from practice.quickbooks.sync.kinds.matching import normalize
from practice.quickbooks.sync.mappers.service import (
    input_hash,
    item_create_body,
    item_name,
    item_state,
    state_hash,
)

logger = logging.getLogger("practice.quickbooks.sync")

KIND = "service"
ENTITY = "Item"
INCOME_TYPES = ("Income", "Other Income")
# Errors a change of the service (name, income account) re-decides by itself.
_REDECIDE_ON_CHANGE = {"type_clash", "ambiguous", "unknown_account", "no_income_account", "rejected"}


@dataclass
class ItemIndex:
    by_name: dict[str, list[dict[str, Any]]]

    def add(self, item: dict[str, Any]) -> None:
        self.by_name.setdefault(_item_key(item), []).append(item)


def _item_key(item: dict[str, Any]) -> str:
    # Sub-items are "Parent:Child": only a top-level item has the service's plain name.
    return normalize(str(item.get("FullyQualifiedName") or item.get("Name") or ""))


def _read_items(ctx: engine.RunContext) -> ItemIndex:
    if "items" not in ctx.cache:
        index = ItemIndex(by_name={})
        for item in ctx.client.query_all(ENTITY, "Active IN (true, false)"):
            index.add(item)
        ctx.cache["items"] = index
    items: ItemIndex = ctx.cache["items"]
    return items


def read_accounts(ctx: engine.RunContext) -> list[dict[str, Any]]:
    """The realm's accounts, read once per run."""
    if "accounts" not in ctx.cache:
        ctx.cache["accounts"] = list(ctx.client.query_all("Account", "Active IN (true, false)"))
    accounts: list[dict[str, Any]] = ctx.cache["accounts"]
    return accounts


def _income_account(ctx: engine.RunContext, service: Service) -> tuple[str | None, str]:
    """(account Id, "") or (None, why not) for a new item of `service`."""
    override = service.income_account_name.strip()
    connection = ctx.connection
    if not override and connection.income_account_id:
        return connection.income_account_id, ""
    wanted = override or connection.income_account_name.strip()
    if not wanted:
        return None, (
            "No income account is chosen for services. Choose one in the QuickBooks settings, then Retry."
        )
    key = normalize(wanted)
    for account in read_accounts(ctx):
        names = {
            normalize(str(account.get("Name", ""))),
            normalize(str(account.get("FullyQualifiedName", ""))),
        }
        if key in names and account.get("AccountType") in INCOME_TYPES and account.get("Active", True):
            return str(account.get("Id")), ""
    if override:
        return None, (
            f"The income account “{override}” set on this service is not an active income account in "
            "QuickBooks. Correct the name on the service (or clear it to use the default from the "
            "QuickBooks settings)."
        )
    return None, (
        f"The income account “{wanted}” chosen in the QuickBooks settings is not an active income "
        "account in QuickBooks. Choose another one in the settings, then Retry."
    )


def _next_request_id(ctx: engine.RunContext, link: SyncLink, operation: str) -> str:
    link.op_seq += 1
    return engine.request_id_for(str(ctx.connection.realm_id), KIND, link.local_id, operation, link.op_seq)


def _wanted(service: Service, link: SyncLink | None, now: Any) -> bool:
    if link is None:
        return not service.archived
    if link.batch_request_id or link.status == SyncStatus.SKIPPED:
        return False
    if link.status == SyncStatus.ERROR:
        return link.error_kind in _REDECIDE_ON_CHANGE and link.input_hash != input_hash(service)
    if link.status == SyncStatus.SYNCED:
        changed = link.synced_at is None or service.updated_at > link.synced_at
        return changed or not link.pushed_hash
    if link.status == SyncStatus.SYNCING:
        return link.next_retry_at is None or link.next_retry_at <= now
    return bool(link.qbo_id) or not service.archived


def plan_services(ctx: engine.RunContext) -> list[engine.Op]:
    connection = ctx.connection
    services, links = engine.plan_scope(
        ctx, KIND, Service.objects.filter(firm_id=connection.firm_id).order_by("pk")
    )
    todo = [
        (service, links.get(service.pk))
        for service in services
        if _wanted(service, links.get(service.pk), ctx.now)
    ]
    if not todo:
        return []
    missing = [service.pk for service, link in todo if link is None]
    if missing:
        made = engine.insert_links(connection, KIND, missing)
        links.update(made)
        todo = [(s, link if link is not None else made.get(s.pk)) for s, link in todo]
    # Items linked to a service (all of them: a plan from what changed holds only some links).
    taken = dict(
        SyncLink.objects.filter(connection=connection, kind=KIND)
        .exclude(qbo_id="")
        .values_list("qbo_id", "local_id")
    )
    ops: list[engine.Op] = []
    decisions: list[engine.DecisionRecord] = []

    def decide(link: SyncLink, operation: str, outcome: str, message: str) -> None:
        decisions.append(
            engine.DecisionRecord(link, {"operation": operation, "outcome": outcome, "message": message})
        )
        ctx.cache["recorded_without_write"] = ctx.cache.get("recorded_without_write", 0) + 1

    for service, link in todo:
        if link is None:
            continue
        if link.qbo_id:  # linked: keep its name and Active in step (a Retry lands here too)
            op = _update_op(ctx, link, service)
            if op is not None:
                ops.append(op)
            elif link.status != SyncStatus.SYNCED:
                link.status = SyncStatus.SYNCED
                engine.clear_error(link)
                decide(link, "sync", Outcome.INFO, "Up to date in QuickBooks.")
            continue
        if service.archived:
            continue
        link.input_hash = input_hash(service)
        link.last_attempt_at = ctx.now
        name = item_name(service)
        found = _read_items(ctx).by_name.get(normalize(name), [])
        services_ = [i for i in found if i.get("Type") == "Service"]
        others = [i for i in found if i.get("Type") != "Service"]
        free = [i for i in services_ if str(i.get("Id")) not in taken]
        if len(free) == 1:
            item = free[0]
            engine.mark_linked(link, item, now=ctx.now)
            # Linked as it is: only a later rename or archive in the app is pushed.
            link.pushed_hash = state_hash({"Name": name, "Active": bool(item.get("Active", True))})
            taken[str(item.get("Id"))] = service.pk
            decide(link, "match", Outcome.SUCCESS, f"Linked by name to the item “{item.get('Name')}”.")
            ctx.count("service.linked_by_name")
            continue
        if len(free) > 1 or services_:
            message = (
                f"More than one QuickBooks item could be “{name}”, or it is already linked to another "
                "service. Rename the service or the items in QuickBooks so the name is unique, then Retry."
            )
            engine.mark_error(link, error_kind="ambiguous", message=message)
            decide(link, "match", Outcome.ERROR, message)
            continue
        if others:
            message = _type_clash_message(name, str(others[0].get("Type", "")))
            engine.mark_error(link, error_kind="type_clash", message=message)
            decide(link, "match", Outcome.ERROR, message)
            continue
        account_id, problem = _income_account(ctx, service)
        if account_id is None:
            kind = "unknown_account" if service.income_account_name.strip() else "no_income_account"
            engine.mark_error(link, error_kind=kind, message=problem)
            decide(link, "create_item", Outcome.ERROR, problem)
            continue
        link.pending_op = "create"
        link.desired_name = name
        ops.append(
            engine.Op(
                link=link,
                operation="create",
                entity=ENTITY,
                body=item_create_body(service, income_account_id=account_id),
                request_id=_next_request_id(ctx, link, "create"),
                label="create_item",
            )
        )
    engine.save_decisions(ctx, decisions)
    return ops


def _type_clash_message(name: str, item_type: str) -> str:
    return (
        "QuickBooks already has an item named “{name}” of type {type}, and item names must be "
        "unique, so the service cannot become a Service item with this name. Rename the service in "
        "the app (for example “{name} (service)”) or rename that item in QuickBooks."
    ).format(name=name, type=item_type or "?")


def _update_op(ctx: engine.RunContext, link: SyncLink, service: Service) -> engine.Op | None:
    state = item_state(service)
    if link.pushed_hash == state_hash(state):
        return None
    link.input_hash = input_hash(service)
    body = {"Id": link.qbo_id, "SyncToken": link.qbo_sync_token or "0", "sparse": True, **state}
    label = "deactivate_item" if service.archived else "update_item"
    return engine.Op(
        link=link,
        operation="update",
        entity=ENTITY,
        body=body,
        request_id=_next_request_id(ctx, link, label),
        label=label,
    )


def on_service_success(ctx: engine.RunContext, link: SyncLink, entity: dict[str, Any], op: engine.Op) -> None:
    engine.mark_linked(link, entity, now=ctx.now)
    link.pushed_hash = state_hash(
        {"Name": str(entity.get("Name", op.body.get("Name", ""))), "Active": bool(entity.get("Active", True))}
    )
    index = ctx.cache.get("items")
    if isinstance(index, ItemIndex) and op.operation == "create":
        index.add(entity)


def _query_by_name(ctx: engine.RunContext, name: str) -> list[dict[str, Any]]:
    return list(ctx.client.query_all(ENTITY, f"Name = {quote(name)} AND Active IN (true, false)"))


def _linked_elsewhere(ctx: engine.RunContext, link: SyncLink) -> set[str]:
    return set(
        SyncLink.objects.filter(connection=ctx.connection, kind=KIND)
        .exclude(pk=link.pk)
        .exclude(qbo_id="")
        .values_list("qbo_id", flat=True)
    )


def find_existing_item(ctx: engine.RunContext, op: engine.Op) -> dict[str, Any] | None:
    """The Service item with the create's Name that no other service links to, or None."""
    name = str(op.body.get("Name", ""))
    found = [
        i
        for i in _query_by_name(ctx, name)
        if i.get("Type") == "Service" and not str(i.get("FullyQualifiedName") or name).count(":")
    ]
    if len(found) == 1 and str(found[0].get("Id")) not in _linked_elsewhere(ctx, op.link):
        return found[0]
    return None


def on_service_rejected(
    ctx: engine.RunContext, link: SyncLink, err: RecordRejected, op: engine.Op
) -> engine.Rejection:
    name = str(op.body.get("Name") or link.qbo_name or "")
    if err.is_duplicate_name and op.operation == "create":
        items = _query_by_name(ctx, name)
        mine = [i for i in items if i.get("Type") == "Service"]
        if len(mine) == 1 and str(mine[0].get("Id")) not in _linked_elsewhere(ctx, link):
            return engine.Rejection(
                link_to=mine[0], message=f"The item “{name}” already existed in QuickBooks; linked to it."
            )
        if items:
            return engine.Rejection(
                error_kind="type_clash", message=_type_clash_message(name, str(items[0].get("Type", "")))
            )
        return engine.Rejection(
            error_kind="rejected",
            message=(
                f"QuickBooks says the name “{name}” is already used (perhaps by an inactive item or a "
                "category). Rename the service in the app or the item in QuickBooks, then Retry."
            ),
        )
    return engine.Rejection(error_kind="rejected", message=plain_fault(err, what="the service"))


def plain_fault(err: RecordRejected, *, what: str) -> str:
    """QBO's refusal of an item, invoice or payment in words a bookkeeper can act on."""
    if isinstance(err, RequestRefused):
        return (
            f"QuickBooks refused the request (HTTP {err.status}) without saying why; nothing was written. "
            "Use Retry later, and tell support if it happens again."
        )
    detail = err.detail or err.message
    if err.code == "2050":
        field = f" ({err.element})" if err.element else ""
        return f"A value of {what} is longer than QuickBooks allows{field}. Shorten it, then Retry."
    if err.code in ("610", "2500"):
        return (
            f"Something {what} refers to (a customer, item, account, class or location) was deleted or "
            "made inactive in QuickBooks. Reactivate it in QuickBooks, then Retry. QuickBooks said: "
            f"{detail}"
        )
    if err.code == "6210":
        return (
            "The books are closed in QuickBooks for this date. Ask whoever manages the QuickBooks "
            "company to allow it (closing date), then Retry."
        )
    return f"QuickBooks refused {what}: {detail}. Fix it, then Retry."


engine.register(
    engine.RecordKind(
        name=KIND,
        entity=ENTITY,
        order=20,
        plan=plan_services,
        on_success=on_service_success,
        on_rejected=on_service_rejected,
        find_existing=find_existing_item,
    )
)
