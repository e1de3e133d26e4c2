"""Reads for firms and memberships."""

from __future__ import annotations

from typing import Any

from practice.firms.models import Firm, Membership


def membership_for_user(*, user: Any) -> Membership | None:
    return Membership.objects.select_related("firm").filter(user=user).first()


def member_list(*, firm: Firm) -> list[Membership]:
    return list(Membership.objects.select_related("user").filter(firm=firm).order_by("role", "user__email"))
