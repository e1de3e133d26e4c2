"""Settings > Integrations > QuickBooks > Problems (owner and admin): counts per category, the
failing records of one category with their fault, "Retry" on one and "Retry all" per category.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_POST

from practice.common.permissions import manager_required
from practice.quickbooks import actions, problems


def _back(kind: str) -> HttpResponse:
    return redirect(f"{reverse('quickbooks:problems')}?kind={kind}")


@manager_required
@require_GET
def problems_page(request: HttpRequest) -> HttpResponse:
    firm = request.firm  # type: ignore[attr-defined]
    attention = problems.attention_for_request(request)
    connection = attention.connection
    categories = problems.error_counts(connection if connection and connection.realm_id else None)
    wanted = request.GET.get("kind", "")
    if wanted not in problems.KINDS:
        wanted = next((c.kind for c in categories if c.count), problems.KINDS[0])
    try:
        page = max(int(request.GET.get("page", "1")), 1)
    except ValueError:
        page = 1
    current = next(c for c in categories if c.kind == wanted)
    rows = problems.failing_records(firm=firm, connection=connection, kind=wanted, page=page)
    return render(
        request,
        "quickbooks/problems.html",
        {
            "attention": attention,
            "connection": connection,
            "categories": categories,
            "current": current,
            "rows": rows,
            "page": page,
            "has_next": page * problems.PAGE_SIZE < current.count,
            "total": sum(c.count for c in categories),
        },
    )


def _actor(request: HttpRequest) -> str:
    return str(getattr(request.user, "email", "") or "")


@manager_required
@require_POST
def problem_retry(request: HttpRequest, kind: str, pk: int) -> HttpResponse:
    if kind not in problems.KINDS:
        raise Http404
    try:
        actions.retry_one(firm=request.firm, kind=kind, local_id=pk, actor=_actor(request))  # type: ignore[attr-defined]
    except (actions.SyncActionError, ValidationError) as e:
        messages.error(
            request,
            _("Could not retry: %(why)s")
            % {"why": _(str(e.messages[0] if isinstance(e, ValidationError) else e))},
        )
    else:
        messages.success(request, _("Retrying with the next sync."))
    return _back(kind)


@manager_required
@require_POST
def problems_retry_all(request: HttpRequest, kind: str) -> HttpResponse:
    if kind not in problems.KINDS:
        raise Http404
    try:
        done = actions.retry_errors(firm=request.firm, kind=kind, actor=_actor(request))  # type: ignore[attr-defined]
    except (actions.SyncActionError, ValidationError) as e:
        messages.error(
            request,
            _("Could not retry: %(why)s")
            % {"why": _(str(e.messages[0] if isinstance(e, ValidationError) else e))},
        )
        return _back(kind)
    if done:
        messages.success(
            request,
            ngettext(
                "%(n)d record will be retried with the next sync.",
                "%(n)d records will be retried with the next sync.",
                done,
            )
            % {"n": done},
        )
    else:
        messages.info(request, _("Nothing could be retried now; each record says why."))
    return _back(kind)
