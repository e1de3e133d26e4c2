"""The "customer" record kind: which accounts sync, how each is decided against the realm's
names (link, create, reactivate or Error), and what QBO's answers and refusals mean.

Importing this module registers the kind with the engine (order 10: customers go before
invoices and payments); `practice.quickbooks.sync.kinds` imports it. `customer_ref` is for the
invoice and payment kinds (None while the account must wait).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.db.models import QuerySet

from practice.clients.models import ClientAccount
from practice.quickbooks.connection.client import quote
from practice.quickbooks.connection.errors import RecordRejected, RequestRefused
from practice.quickbooks.models import Connection, SyncLink
from practice.quickbooks.statuses import Outcome, SyncStatus
from practice.quickbooks.sync import engine
from practice.quickbooks.sync.kinds import names
from practice.quickbooks.sync.kinds.matching import (
    Decision,
    NameIndex,
    QBOName,
    clean_display_name,
    customer_from_qbo,
    decide,
    name_problem,
    normalize,
)
from practice.quickbooks.sync.mappers.customer import body_hash, customer_body, input_hash

if TYPE_CHECKING:
    from practice.quickbooks.connection.client import QBOClient

logger = logging.getLogger("practice.quickbooks.sync")

KIND = "customer"
ENTITY = "Customer"
# Error kinds a change of the account's name re-decides automatically (the others need a person,
# or are about QBO's side and are re-tried with Retry).
_REDECIDE_ON_RENAME = {
    "invalid_name",
    "near_match",
    "no_match",
    "vendor_clash",
    "employee_clash",
    "inactive_match",
    "ambiguous",
    "linked_elsewhere",
    "duplicate_name",
    "rejected",
}


# --------------------------------------------------------------------------------------------
# Eligibility


def eligible_account_ids(
    connection: Connection, among: QuerySet[ClientAccount] | None = None
) -> set[int] | None:
    """Ids of accounts (of `among`, when given) that sync by the firm's rule; None means "every
    active account"."""
    if connection.account_scope == "all":
        return None
    from practice.billing.selectors import account_ids_with_billing

    return set(account_ids_with_billing(firm=connection.firm, among=among))


# --------------------------------------------------------------------------------------------
# The realm's names (kept between runs, refreshed once per run: kinds/names.py)


def _read_index(ctx: engine.RunContext, names_to_decide: Iterable[str] | None = None) -> NameIndex:
    """The name index that decides these account names exactly as the realm's whole lists would
    (None: every stored name, which grows with the realm)."""
    return names.index_for(ctx, names_to_decide)


def _individual_type_id(ctx: engine.RunContext) -> str | None:
    """The id of an active CustomerType named "Individual" (or None), kept between runs
    (sync/realm_facts.py; CustomerType has no CDC or webhook: its age and refusals refresh it)."""
    from practice.quickbooks.sync import realm_facts

    def read() -> str | None:
        try:
            for body in ctx.client.query_all("CustomerType", "Active IN (true, false)"):
                if str(body.get("Name", "")).strip().casefold() == "individual" and body.get("Active", True):
                    return str(body.get("Id"))
        except RecordRejected:
            pass  # a company without customer types: leave the field empty
        return None

    value: str | None = realm_facts.get(ctx, realm_facts.INDIVIDUAL_TYPE, read)
    return value


# --------------------------------------------------------------------------------------------
# The "customer" record kind


def _next_request_id(ctx: engine.RunContext, link: SyncLink, operation: str) -> str:
    link.op_seq += 1
    return engine.request_id_for(str(ctx.connection.realm_id), KIND, link.local_id, operation, link.op_seq)


def _get_or_make_link(connection: Connection, account: ClientAccount) -> SyncLink:
    link, _created = SyncLink.objects.get_or_create(
        connection=connection,
        kind=KIND,
        local_id=account.pk,
        defaults={"firm_id": connection.firm_id, "status": SyncStatus.NOT_SYNCED},
    )
    return link


def _is_due(link: SyncLink, now: Any) -> bool:
    return link.next_retry_at is None or link.next_retry_at <= now


def _is_fresh(link: SyncLink | None) -> bool:
    """A link nobody has acted on yet (ours, or one a person created but left untouched)."""
    return (
        link is not None
        and link.status == SyncStatus.NOT_SYNCED
        and not link.batch_request_id
        and not link.qbo_id
        and not link.pending_op
    )


def _record_decision(
    ctx: engine.RunContext,
    link: SyncLink,
    account: ClientAccount,
    result: Any,
    decisions: list[engine.DecisionRecord],
) -> None:
    """Decide without a write to QBO (a link by name, or an Error); saved with the others."""
    link.input_hash = input_hash(account)
    link.last_attempt_at = ctx.now
    if result.decision == Decision.LINK:
        c: QBOName = result.customer
        engine.mark_linked(link, {"Id": c.id, "SyncToken": c.sync_token, "DisplayName": c.name}, now=ctx.now)
        decisions.append(
            engine.DecisionRecord(
                link,
                {
                    "operation": "match",
                    "outcome": Outcome.SUCCESS,
                    "message": f"Linked by name to “{c.name}”.",
                },
            )
        )
        ctx.count("customer.linked_by_name")
    else:
        engine.mark_error(
            link,
            error_kind=result.decision.value,
            message=result.message,
            candidates=[c.as_candidate() for c in result.candidates],
        )
        decisions.append(
            engine.DecisionRecord(
                link, {"operation": "match", "outcome": Outcome.ERROR, "message": result.message}
            )
        )
        ctx.count(f"customer.{result.decision.value}")
    ctx.cache["recorded_without_write"] = ctx.cache.get("recorded_without_write", 0) + 1


def plan_customers(ctx: engine.RunContext) -> list[engine.Op]:
    """Decide, for every account that needs it, to link, create, reactivate, or show an Error."""
    connection = ctx.connection
    billing_changed = None
    if ctx.since is not None and connection.account_scope != "all":
        from practice.billing.selectors import accounts_with_billing_changed_since

        # A first invoice or payment makes its account eligible without touching the account.
        billing_changed = accounts_with_billing_changed_since(firm=connection.firm, since=ctx.since)
    accounts, links = engine.plan_scope(
        ctx,
        KIND,
        ClientAccount.objects.filter(firm_id=connection.firm_id).order_by("pk"),
        also_changed=billing_changed,
    )
    eligible = eligible_account_ids(connection, among=None if ctx.since is None else accounts)

    todo: list[tuple[ClientAccount, SyncLink | None]] = []
    for account in accounts.iterator(chunk_size=2000):
        link = links.get(account.pk)
        if account.archived:
            # Archived accounts are not pushed; one archived while waiting stops waiting.
            if link is not None and link.status == SyncStatus.SYNCING and not link.batch_request_id:
                engine.clear_pending(link)
                link.status = SyncStatus.NOT_SYNCED
                engine.save_with_attempt(
                    link,
                    operation="sync",
                    outcome=Outcome.INFO,
                    message="The account was archived; it is not synced.",
                )
            continue
        if link is None:
            if eligible is None or account.pk in eligible:
                todo.append((account, None))
            continue
        if link.batch_request_id or link.status in (SyncStatus.SKIPPED, SyncStatus.SYNCED):
            continue  # in flight (replayed by the engine), turned off, or done
        if link.status == SyncStatus.ERROR:
            if link.error_kind in _REDECIDE_ON_RENAME and link.input_hash != input_hash(account):
                todo.append((account, link))
            continue
        due = link.status == SyncStatus.SYNCING and _is_due(link, ctx.now)
        wanted = link.status == SyncStatus.NOT_SYNCED and (eligible is None or account.pk in eligible)
        if due or wanted:
            todo.append((account, link))
    if not todo:
        return []

    # Accounts seen for the first time get their links in bulk (a few statements per page, not
    # one get_or_create each). One a person acted on meanwhile is decided next round.
    missing = [account.pk for account, link in todo if link is None]
    if missing:
        made = engine.insert_links(connection, KIND, missing)
        links.update(made)
        todo = [
            (account, link if link is not None else made[account.pk])
            for account, link in todo
            if link is not None or _is_fresh(made.get(account.pk))
        ]

    # Names already spoken for: the index's customers that an account links to already (only
    # the customers these accounts could match are looked up), and creates in flight.
    index = _read_index(ctx, [account.name for account, _link in todo])
    candidates = {c.id for names_ in (index.exact, index.loose) for found in names_.values() for c in found}
    taken_ids = engine.linked_qbo_ids(connection, KIND, candidates)
    claimed: set[str] = set()
    in_flight = SyncLink.objects.filter(connection=connection, kind=KIND).exclude(batch_request_id="")
    for pending_body in in_flight.values_list("pending_body", flat=True):
        if isinstance(pending_body, dict):
            name = (pending_body.get("body") or {}).get("DisplayName")
            if name:
                claimed.add(normalize(str(name)))

    ops: list[engine.Op] = []
    decisions: list[engine.DecisionRecord] = []
    create_when_missing = connection.unmatched_customer != "ask"
    for account, link in todo:
        assert link is not None
        if engine.plan_full(ops):
            break  # the rest next round, once these are in QBO
        if link.pending_op == "reactivate" and link.target_qbo_id:
            op = _plan_reactivate(ctx, link)
            if op is not None:
                ops.append(op)
            continue
        if link.pending_op == "create":
            name = link.desired_name or account.name
            problem = name_problem(name)
            if problem:
                engine.mark_error(link, error_kind="invalid_name", message=problem)
                engine.save_with_attempt(link, operation="create", outcome=Outcome.ERROR, message=problem)
                continue
            if normalize(name) in claimed:
                continue  # another account is creating this name right now; decide next round
            claimed.add(normalize(name))
            ops.append(_create_op(ctx, link, account, name))
            continue
        result = decide(account.name, index, create_when_missing=create_when_missing, taken_ids=taken_ids)
        if result.decision == Decision.CREATE:
            key = normalize(account.name)
            if key in claimed:
                continue  # same name as an account created in this run: next round links or errs
            claimed.add(key)
            link.input_hash = input_hash(account)
            ops.append(_create_op(ctx, link, account, account.name))
        else:
            _record_decision(ctx, link, account, result, decisions)
            if result.decision == Decision.LINK and result.customer is not None:
                taken_ids.add(result.customer.id)
    engine.save_decisions(ctx, decisions)
    return ops


def _create_op(ctx: engine.RunContext, link: SyncLink, account: ClientAccount, name: str) -> engine.Op:
    body = customer_body(account, display_name=name, customer_type_id=_individual_type_id(ctx))
    link.pending_op = "create"
    link.desired_name = clean_display_name(name)
    # The decision is made on this version of the account: a later rename decides again.
    link.input_hash = input_hash(account)
    return engine.Op(
        link=link,
        operation="create",
        entity=ENTITY,
        body=body,
        request_id=_next_request_id(ctx, link, "create"),
        label="create",
    )


def _plan_reactivate(ctx: engine.RunContext, link: SyncLink) -> engine.Op | None:
    """Sparse update Active=true; the SyncToken comes from a fresh read."""
    try:
        current = ctx.client.read(ENTITY, link.target_qbo_id)
    except RecordRejected as e:
        message = (
            _plain_fault(e)
            if isinstance(e, RequestRefused)
            else "The QuickBooks customer to reactivate no longer exists. "
            "Pick another customer or create one."
        )
        engine.mark_error(link, error_kind="rejected", message=message, code=e.code, detail=e.detail)
        engine.save_with_attempt(
            link,
            operation="reactivate",
            outcome=Outcome.REJECTED,
            message=message,
            fault_code=e.code,
            fault_detail=e.detail,
        )
        return None
    customer = current.get(ENTITY, current)
    body = {
        "Id": str(customer.get("Id")),
        "SyncToken": str(customer.get("SyncToken", "0")),
        "sparse": True,
        "Active": True,
    }
    return engine.Op(
        link=link,
        operation="update",
        entity=ENTITY,
        body=body,
        request_id=_next_request_id(ctx, link, "reactivate"),
        label="reactivate",
    )


def on_customer_success(
    ctx: engine.RunContext, link: SyncLink, entity: dict[str, Any], op: engine.Op
) -> None:
    engine.mark_linked(link, entity, now=ctx.now)
    link.pushed_hash = body_hash(op.body)
    names.note_written(ctx, ENTITY, entity)


def _query_by_name(client: QBOClient, entity: str, name: str) -> list[dict[str, Any]]:
    where = f"DisplayName = {quote(name)} AND Active IN (true, false)"
    return list(client.query_all(entity, where))


def _ids_linked_elsewhere(ctx: engine.RunContext, link: SyncLink) -> set[str]:
    return set(
        SyncLink.objects.filter(connection=ctx.connection, kind=KIND)
        .exclude(pk=link.pk)
        .exclude(qbo_id="")
        .values_list("qbo_id", flat=True)
    )


def find_existing_customer(ctx: engine.RunContext, op: engine.Op) -> dict[str, Any] | None:
    """Before a create whose earlier, unanswered send may have been written goes out again: the
    one active customer with its DisplayName that no other account links to, or None.

    Always asks QBO (one query): the run's name index cannot know a write made after it was read.
    A 429 or 5xx propagates, and the create waits.
    """
    name = str(op.body.get("DisplayName", ""))
    found = _query_by_name(ctx.client, ENTITY, name)
    names.note_looked_up(ctx, ENTITY, found)
    active = [c for c in found if c.get("Active", True)]
    if len(active) == 1 and str(active[0].get("Id")) not in _ids_linked_elsewhere(ctx, op.link):
        return active[0]
    return None


def on_customer_rejected(
    ctx: engine.RunContext, link: SyncLink, err: RecordRejected, op: engine.Op
) -> engine.Rejection:
    """Turn a Fault into words. 6240 on create is looked into: whose name is it?"""
    if err.is_duplicate_name and op.operation == "create":
        return _whose_name(ctx, link, str(op.body.get("DisplayName", "")))
    return engine.Rejection(error_kind="rejected", message=_plain_fault(err))


def _whose_name(ctx: engine.RunContext, link: SyncLink, name: str) -> engine.Rejection:
    """6240 (the name is a customer, vendor or employee already, qbo-api.md §2.1), answered from the
    realm's name index. Only a name the index does not know at all costs queries (written in QBO
    since the index was refreshed: most likely by our own earlier, unanswered attempt, or a vendor
    or employee added since the last CDC sweep); what they find is stored in the index. A 429 or
    5xx on them propagates, so the account stays Syncing rather than showing a wrong Error."""
    index = _read_index(ctx, [name])
    key = normalize(name)
    customers = list(index.exact.get(key, []))
    if not customers and not index.others.get(key):
        found = _query_by_name(ctx.client, ENTITY, name)
        names.note_looked_up(ctx, ENTITY, found)
        customers = [customer_from_qbo(c) for c in found]
        if not customers:
            for entity in names.OTHERS:
                names.note_looked_up(ctx, entity, _query_by_name(ctx.client, entity, name))
            index = _read_index(ctx, [name])
    active = [c for c in customers if c.active]
    if len(active) == 1 and active[0].id not in _ids_linked_elsewhere(ctx, link):
        # The name is an active customer nobody else links to: most likely the one our own
        # earlier, unanswered attempt created. Linking it is the match rule anyway.
        c = active[0]
        return engine.Rejection(
            link_to={"Id": c.id, "SyncToken": c.sync_token, "DisplayName": c.name},
            message=f"“{name}” already existed in QuickBooks; linked to it.",
        )
    if customers and not active:
        c = customers[0]
        return engine.Rejection(
            error_kind="inactive_match",
            message=(
                f"The QuickBooks customer “{c.name}” is inactive. Reactivate and link it, "
                "pick another customer, or create a new one."
            ),
            candidates=[c.as_candidate()],
        )
    for other in index.others.get(key, []):
        what = "an employee" if other.entity == "Employee" else "a vendor"
        return engine.Rejection(
            error_kind="employee_clash" if other.entity == "Employee" else "vendor_clash",
            message=(
                f"“{name}” is already {what} in QuickBooks, and QuickBooks does not allow "
                "a customer with the same name. Link this account to an existing customer, "
                f"or create the customer under a different name (for example “{name} "
                "(client)”)."
            ),
            candidates=[other.as_candidate()],
        )
    return engine.Rejection(
        error_kind="duplicate_name",
        message=(
            f"QuickBooks says the name “{name}” is already used by another customer, vendor or "
            "employee. Link this account to the existing customer or create one with a different name."
        ),
    )


def _plain_fault(err: RecordRejected) -> str:
    if isinstance(err, RequestRefused):
        return (
            f"QuickBooks refused the request (HTTP {err.status}) without saying why; nothing was "
            "written. This is not about the account: use Retry later, and tell support if it happens again."
        )
    if err.code == "2050":
        field = f" ({err.element})" if err.element else ""
        return f"A value is longer than QuickBooks allows{field}. Shorten it on the account, then Retry."
    if err.code in ("610", "2500"):
        return (
            "Something this customer refers to was deleted or made inactive in QuickBooks. "
            "Check the customer type and the customer in QuickBooks, then Retry."
        )
    if err.code == "5010":
        return "Someone changed this customer in QuickBooks at the same time. Retry to apply the change."
    if err.code == "6000":
        return f"QuickBooks refused the customer: {err.detail or err.message}. Fix the account, then Retry."
    detail = err.detail or err.message
    return f"QuickBooks refused the customer ({err.message}): {detail}. Fix the account, then Retry."


engine.register(
    engine.RecordKind(
        name=KIND,
        entity=ENTITY,
        order=10,
        plan=plan_customers,
        on_success=on_customer_success,
        on_rejected=on_customer_rejected,
        find_existing=find_existing_customer,
    )
)


# --------------------------------------------------------------------------------------------
# Lookups for other record kinds


def customer_ref(*, connection: Connection, account_id: int) -> dict[str, str] | None:
    """The QBO CustomerRef for an account's invoices and payments, or None while they must wait
    (the account is not Synced: not linked yet, Skipped, or in Error)."""
    link = (
        SyncLink.objects.filter(
            connection=connection, kind=KIND, local_id=account_id, status=SyncStatus.SYNCED
        )
        .exclude(qbo_id="")
        .only("qbo_id", "qbo_name")
        .first()
    )
    if link is None:
        return None
    return {"value": link.qbo_id, "name": link.qbo_name}
