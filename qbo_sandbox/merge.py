"""Merging two name-list records, as QuickBooks Online does from its own web pages.

QBO merges Customers, Vendors, Employees, Items, Accounts and Classes only in its UI (renaming a
record to the name of another one and confirming); the API has no merge (qbo-api.md §9.4). The
sandbox offers it on its control plane (`POST /_sandbox/realms/{realm}/merge`), the CLI
(`qbo-sandbox merge`) and the customer page (`/app/customerdetail`), so an app can be tested
against the notifications a merge sends.

What happens, and how sure we are (C = Intuit says so, P = QBO's product help pages, O = ours):

* the webhook: one `Merge` for the survivor with the merged-away Id (`deletedId` in the legacy
  format, `data.deletedid` in CloudEvents) (C, §9.4); no separate `Delete` for the loser (O:
  whether QBO sends one is unknown);
* every reference to the loser in any other record (transactions' `CustomerRef`, `ItemRef`,
  `AccountRef`, `ClassRef`, `VendorRef`, `EntityRef`, ...; sub-records' `ParentRef`) now points at
  the survivor (P: "all transactions move to the record you keep"); each record changed that way
  gets SyncToken + 1, a new `LastUpdatedTime` and an `Update` notification (O);
* the loser's balance (customer, vendor: `Balance`; account: `CurrentBalance`) moves to the
  survivor (P), whose SyncToken moves too (O);
* the loser is **deleted**: reads answer 610, queries never return it (not even with
  `Active = false`), CDC returns it as `{"Id", "status": "Deleted", "domain", "MetaData"}` (R:
  reported in §9.4), its name is free again (O: in QBO the loser took the survivor's name);
* refused (O, after QBO's product rules where they exist): merging a record into itself, into an
  inactive record or into one of its own sub-records; customers or vendors in different currencies
  (P); accounts of different type or detail type (P); items of different type (P); a sub-record
  tree that would end up nested deeper than the list allows.
"""

from __future__ import annotations

import copy
from typing import Any

from qbo_sandbox import store
from qbo_sandbox.entities import PERSON_ENTITIES, SPECS

MERGEABLE = ("Customer", "Vendor", "Employee", "Item", "Account", "Class")
# How deep each hierarchical list nests (the builders in store.py enforce the same numbers).
_MAX_LEVEL = {"Customer": 4, "Account": 5, "Item": 4, "Class": 4}
_PERSON_REFS = {"CustomerRef": "Customer", "VendorRef": "Vendor", "EmployeeRef": "Employee"}

Obj = dict[str, Any]


class MergeError(ValueError):
    """A merge refused; `field` names the input at fault (entity, from_id or into_id)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _targets(key: str, owner: str) -> tuple[str, ...]:
    """The entities a reference field named `key`, inside a record of `owner`, can point at."""
    if key == "ParentRef":
        return (owner,)
    if key.endswith("AccountRef"):  # AccountRef, IncomeAccountRef, DepositToAccountRef, ...
        return ("Account",)
    if key == "ItemRef":
        return ("Item",)
    if key == "ClassRef":
        return ("Class",)
    if key in _PERSON_REFS:
        return (_PERSON_REFS[key],)
    if key == "EntityRef":
        return PERSON_ENTITIES
    return ()


def _rewrite(node: Any, owner: str, entity: str, loser: str, survivor: str, name: str | None) -> bool:
    """Point every reference to `entity` `loser` inside `node` at `survivor`; True if any moved."""
    changed = False
    if isinstance(node, dict):
        for key, value in node.items():
            if (
                key.endswith("Ref")
                and isinstance(value, dict)
                and entity in _targets(key, owner)
                and str(value.get("value")) == loser
                # An EntityRef says what it points at (Attachable links transactions that way).
                and value.get("type") in (None, "", entity)
            ):
                value["value"] = survivor
                if name:
                    value["name"] = name
                changed = True
            else:
                changed = _rewrite(value, owner, entity, loser, survivor, name) or changed
    elif isinstance(node, list):
        for item in node:
            changed = _rewrite(item, owner, entity, loser, survivor, name) or changed
    return changed


def _parent_id(obj: Obj) -> str | None:
    ref = obj.get("ParentRef")
    return str(ref["value"]) if isinstance(ref, dict) and ref.get("value") not in (None, "") else None


def _children(realm: store.Realm, entity: str, parent_id: str) -> list[Obj]:
    return [o for o in realm.data[entity].values() if _parent_id(o) == parent_id]


def _depth_below(realm: store.Realm, entity: str, obj_id: str) -> int:
    """Levels of sub-records under `obj_id` (0 when it has none)."""
    kids = _children(realm, entity, obj_id)
    return 1 + max(_depth_below(realm, entity, k["Id"]) for k in kids) if kids else 0


def ancestors(realm: store.Realm, entity: str, obj: Obj) -> list[str]:
    seen: list[str] = []
    parent = _parent_id(obj)
    while parent is not None and parent not in seen:
        seen.append(parent)
        up = realm.get(entity, parent)
        parent = _parent_id(up) if up is not None else None
    return seen


def _ref_value(obj: Obj, key: str) -> str | None:
    ref = obj.get(key)
    return str(ref.get("value")) if isinstance(ref, dict) and ref.get("value") else None


def check(realm: store.Realm, entity: str, from_id: str, into_id: str) -> tuple[Obj, Obj]:
    """The loser and the survivor, or MergeError saying why QBO (or the sandbox) would refuse."""
    if entity not in MERGEABLE:
        raise MergeError(
            "entity", f"{entity or 'that'} can't be merged; QuickBooks merges {', '.join(MERGEABLE)}"
        )
    noun = entity.lower()
    if not from_id:
        raise MergeError("from_id", f"say which {noun} to merge away (from_id)")
    if not into_id:
        raise MergeError("into_id", f"say which {noun} to keep (into_id)")
    loser = realm.get(entity, from_id)
    if loser is None:
        merged = realm.merged.get(entity, {}).get(from_id)
        if merged is not None:
            raise MergeError("from_id", f"{entity} {from_id} was already merged into {entity} {merged}")
        raise MergeError("from_id", f"there is no {entity} {from_id}")
    survivor = realm.get(entity, into_id)
    if survivor is None:
        merged = realm.merged.get(entity, {}).get(into_id)
        if merged is not None:
            raise MergeError(
                "into_id", f"{entity} {into_id} was merged into {entity} {merged}; merge into that one"
            )
        raise MergeError("into_id", f"there is no {entity} {into_id}")
    if from_id == into_id:
        raise MergeError("into_id", f"a {noun} can't be merged into itself")
    if survivor.get("Active") is False:
        raise MergeError("into_id", f"{entity} {into_id} is inactive; make it active before merging into it")
    if from_id in ancestors(realm, entity, survivor):
        raise MergeError("into_id", f"{entity} {into_id} is a sub-{noun} of {entity} {from_id}")
    if entity in ("Customer", "Vendor"):
        a, b = _ref_value(loser, "CurrencyRef") or "USD", _ref_value(survivor, "CurrencyRef") or "USD"
        if a != b:
            raise MergeError("into_id", f"{entity}s in different currencies can't be merged ({a} and {b})")
    if entity == "Account":
        for key, label in (("AccountType", "type"), ("AccountSubType", "detail type")):
            if loser.get(key) != survivor.get(key):
                raise MergeError(
                    "into_id",
                    f"accounts of different {label} can't be merged "
                    f"({loser.get(key)} and {survivor.get(key)})",
                )
    if entity == "Item" and loser.get("Type") != survivor.get("Type"):
        raise MergeError(
            "into_id",
            f"items of different type can't be merged ({loser.get('Type')} and {survivor.get('Type')})",
        )
    if entity in _MAX_LEVEL:
        deepest = int(survivor.get("Level") or 0) + _depth_below(realm, entity, from_id)
        if deepest > _MAX_LEVEL[entity]:
            raise MergeError(
                "into_id",
                f"the sub-{noun}s of {entity} {from_id} would be nested {deepest} levels deep under "
                f"{entity} {into_id}; QuickBooks allows {_MAX_LEVEL[entity]}",
            )
    return loser, survivor


def _relevel(realm: store.Realm, entity: str, parent: Obj) -> None:
    """Sub-records under a moved record get its new path and level (FullyQualifiedName, Level)."""
    name_key = SPECS[entity].name_field or "Name"
    for child in _children(realm, entity, parent["Id"]):
        path = parent.get("FullyQualifiedName") or parent.get(name_key)
        child["FullyQualifiedName"] = f"{path}:{child.get(name_key)}"
        child["Level"] = int(parent.get("Level") or 0) + 1
        _relevel(realm, entity, child)


def _bump_jobs(realm: store.Realm, customer_id: str | None, delta: float) -> None:
    """Add `delta` to BalanceWithJobs of a customer and every parent above it."""
    seen: set[str] = set()
    cust = realm.get("Customer", customer_id) if customer_id else None
    while cust is not None and cust["Id"] not in seen and abs(delta) >= 0.0001:
        seen.add(cust["Id"])
        cust["BalanceWithJobs"] = store.money(float(cust.get("BalanceWithJobs") or 0) + delta)
        parent = _parent_id(cust)
        cust = realm.get("Customer", parent) if parent else None


def merge(realm: store.Realm, entity: str, from_id: str, into_id: str) -> dict[str, Any]:
    """Merge `from_id` into `into_id`; returns {"survivor", "deleted_id", "moved": [{entity, Id}]}."""
    _, survivor = check(realm, entity, from_id, into_id)
    _, stamp = realm.stamp()
    name = realm.display_name(entity, survivor)
    moved: list[tuple[str, str]] = []
    for table_name, table in realm.data.items():
        for obj_id, old in list(table.items()):
            if table_name == entity and obj_id in (from_id, into_id):
                continue
            new = copy.deepcopy(old)
            if not _rewrite(new, table_name, entity, from_id, into_id, name):
                continue
            new["SyncToken"] = str(int(old.get("SyncToken", "0") or 0) + 1)
            new["MetaData"] = {**(old.get("MetaData") or {}), "LastUpdatedTime": stamp}
            moved_child = table_name == entity and _parent_id(old) == from_id
            if moved_child:
                # A sub-customer's own balance and its jobs' leave the loser's roll-up for the survivor's.
                if entity == "Customer":
                    jobs = float(old.get("BalanceWithJobs") or 0)
                    _bump_jobs(realm, from_id, -jobs)
                    _bump_jobs(realm, into_id, jobs)
                name_key = SPECS[entity].name_field or "Name"
                new["FullyQualifiedName"] = (
                    f"{survivor.get('FullyQualifiedName') or survivor.get(name_key)}:{new.get(name_key)}"
                )
                new["Level"] = int(survivor.get("Level") or 0) + 1
            # _store keeps the indexes, invoice balances and customer balances right as refs move.
            realm._store(table_name, old, new)
            if moved_child:
                _relevel(realm, entity, new)
            moved.append((table_name, obj_id))

    kept = copy.deepcopy(realm.data[entity][into_id])
    gone = realm.data[entity][from_id]
    if entity == "Customer":
        # What is left on the loser after its transactions moved (an opening balance, say).
        rest = float(gone.get("Balance") or 0)
        kept["Balance"] = store.money(float(kept.get("Balance") or 0) + rest)
        _bump_jobs(realm, _parent_id(gone), -rest)
        _bump_jobs(realm, _parent_id(kept), rest)
        kept["BalanceWithJobs"] = store.money(float(kept.get("BalanceWithJobs") or 0) + rest)
    elif entity == "Vendor":
        kept["Balance"] = store.money(float(kept.get("Balance") or 0) + float(gone.get("Balance") or 0))
    elif entity == "Account":
        for key in ("CurrentBalance", "CurrentBalanceWithSubAccounts"):
            if key in gone or key in kept:
                kept[key] = store.money(float(kept.get(key) or 0) + float(gone.get(key) or 0))
    kept["SyncToken"] = str(int(kept.get("SyncToken", "0") or 0) + 1)
    kept["MetaData"] = {**(kept.get("MetaData") or {}), "LastUpdatedTime": stamp}
    realm._store(entity, realm.data[entity][into_id], kept)
    realm._store(entity, gone, None)
    realm.tombstones.setdefault(entity, {})[from_id] = {
        "domain": "QBO",
        "status": "Deleted",
        "Id": from_id,
        "MetaData": {"LastUpdatedTime": stamp},
    }
    realm.merged.setdefault(entity, {})[from_id] = into_id

    realm._emit(entity, into_id, "Merge", stamp, deleted_id=from_id)
    for table_name, obj_id in moved:
        realm._emit(table_name, obj_id, "Update", stamp)
    return {
        "entity": entity,
        "survivor": kept,
        "deleted_id": from_id,
        "moved": [{"entity": t, "Id": i} for t, i in moved],
    }
