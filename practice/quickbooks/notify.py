"""Tell the owner and admins when records newly enter Error (issue 11 item 3).

Called after every run (engine.on_run_finished). One notification per person and one e-mail per
run, listing what is new; an error already notified (same record, same error) is never notified
again, and a record that recovers and fails again is. What was notified lives in
notifications.NoticeKey ("qbo-link:<id>" -> a hash of the error). A few queries per run,
whatever the number of records.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.db import transaction
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from practice.quickbooks.history_text import translate
from practice.quickbooks.models import Connection, SyncLink
from practice.quickbooks.statuses import SyncStatus

SUBJECT = "qbo-link:"
LISTED = 10  # records named in one message; the problems page has the rest


def _key(link: SyncLink) -> str:
    raw = "\x1f".join((link.error_kind, link.error_code, link.error_message))
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def notify_new_errors(connection_id: int, result: Any = None) -> int:
    """Notify what newly entered Error in this connection. Returns how many records were new."""
    from practice.notifications.models import NoticeKey
    from practice.notifications.services import notify_managers
    from practice.quickbooks.problems import CATEGORIES

    connection = Connection.objects.select_related("firm").filter(pk=connection_id).first()
    if connection is None:
        return 0
    firm = connection.firm
    errors = list(
        SyncLink.objects.filter(connection=connection, status=SyncStatus.ERROR)
        .order_by("kind", "pk")
        .only("pk", "kind", "local_id", "error_kind", "error_code", "error_message")
    )
    current = {f"{SUBJECT}{link.pk}": (link, _key(link)) for link in errors}
    with transaction.atomic():
        known = dict(
            NoticeKey.objects.select_for_update()
            .filter(firm=firm, subject__startswith=SUBJECT)
            .values_list("subject", "key")
        )
        # Records no longer in Error: forget them, so failing again is news again.
        gone = [s for s in known if s not in current]
        if gone:
            NoticeKey.objects.filter(firm=firm, subject__in=gone).delete()
        new = [(s, link, key) for s, (link, key) in current.items() if known.get(s) != key]
        if not new:
            return 0
        changed = [s for s, _link, _key in new if s in known]
        if changed:
            NoticeKey.objects.filter(firm=firm, subject__in=changed).delete()
        NoticeKey.objects.bulk_create([NoticeKey(firm=firm, subject=s, key=k) for s, _l, k in new])
    n = len(new)

    def compose() -> tuple[str, str]:
        # Called with each recipient language active: labels and known sentences translate.
        labels = {kind: str(label) for kind, label in CATEGORIES}
        title = ngettext(
            "QuickBooks: %(n)d record could not be sent",
            "QuickBooks: %(n)d records could not be sent",
            n,
        ) % {"n": n}
        lines = [
            f"• {labels.get(link.kind, link.kind)} #{link.local_id}: "
            f"{translate(link.error_message) or link.error_kind}"
            for _s, link, _k in new[:LISTED]
        ]
        if n > LISTED:
            lines.append(_("…and %(n)d more.") % {"n": n - LISTED})
        body = "\n".join(
            [_("These records need your attention; the problems page says what to do about each:"), *lines]
        )
        return title, body

    notify_managers(firm=firm, compose=compose, url=reverse("quickbooks:problems"))
    return n


def _after_run(connection_id: int, result: Any) -> None:
    notify_new_errors(connection_id, result)


def install() -> None:
    from practice.quickbooks.sync import engine

    engine.on_run_finished(_after_run)
