"""Writes for firms, users and memberships."""

from __future__ import annotations

from django.db import transaction

from practice.firms.models import Firm, Membership, Role, User


@transaction.atomic
def firm_create(*, name: str, owner_email: str, owner_password: str, owner_name: str = "") -> Firm:
    firm = Firm.objects.create(name=name)
    user = User.objects.create_user(owner_email, owner_password, full_name=owner_name)
    Membership.objects.create(user=user, firm=firm, role=Role.OWNER)
    return firm


@transaction.atomic
def member_add(*, firm: Firm, email: str, password: str, role: str, full_name: str = "") -> Membership:
    if role not in Role.values:
        raise ValueError(f"role: unknown role {role!r}")
    user = User.objects.create_user(email, password, full_name=full_name)
    return Membership.objects.create(user=user, firm=firm, role=role)


def user_set_language(*, user: User, language: str) -> User:
    if language not in {"", "en", "es"}:
        raise ValueError(f"language: unsupported language {language!r}")
    user.language = language
    user.save(update_fields=["language"])
    return user
