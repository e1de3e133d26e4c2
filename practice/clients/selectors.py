"""Reads for client accounts. Always scoped by firm: another firm's ids are simply not found."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.shortcuts import get_object_or_404

from practice.clients.models import ClientAccount
from practice.firms.models import Firm


def account_list(*, firm: Firm, search: str = "", include_archived: bool = False) -> QuerySet[ClientAccount]:
    """The firm's accounts by name; `search` matches name, e-mail or phone (case-insensitive)."""
    qs = ClientAccount.objects.filter(firm=firm)
    if not include_archived:
        qs = qs.filter(archived=False)
    search = search.strip().replace("\x00", "")
    if search:
        qs = qs.filter(Q(name__icontains=search) | Q(email__icontains=search) | Q(phone__icontains=search))
    return qs.order_by("name", "id")


def account_get(*, firm: Firm, pk: int) -> ClientAccount:
    """The account with this id in this firm, else Http404 (never 403: ids of others don't exist)."""
    return get_object_or_404(ClientAccount, firm=firm, pk=pk)
