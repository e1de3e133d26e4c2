"""Telling a firm's owner and admins: one in-app notification each and one e-mail (Django's mail
backend; the console in the demo), each in their own language."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.mail import send_mail
from django.utils import timezone, translation

from practice.notifications.models import Notification

if TYPE_CHECKING:
    from practice.firms.models import Firm, User

logger = logging.getLogger("practice.notifications")


def managers(firm: Firm) -> list[User]:
    from practice.firms.models import User

    return list(
        User.objects.filter(
            membership__firm=firm, membership__role__in=("owner", "admin"), is_active=True
        ).order_by("pk")
    )


def notify_managers(*, firm: Firm, compose: Callable[[], tuple[str, str]], url: str = "") -> int:
    """One notification per owner/admin and one e-mail per language to them. Returns how many people.

    `compose()` returns (title, body); it is called once per language in use among the
    recipients (a person's own language setting, else the site's default) with that language
    active, so an admin who reads Spanish gets the message in Spanish, in the bell and by e-mail.
    """
    people = managers(firm)
    if not people:
        return 0
    by_language: dict[str, list[User]] = {}
    for person in people:
        by_language.setdefault(person.language or settings.LANGUAGE_CODE, []).append(person)
    site = str(getattr(settings, "SITE_URL", "") or "")
    link = f"{site.rstrip('/')}{url}" if url and site else url
    for language, group in sorted(by_language.items()):
        with translation.override(language):
            title, body = compose()
        Notification.objects.bulk_create(
            [Notification(firm=firm, user=u, title=title, body=body, url=url) for u in group]
        )
        text = f"{body}\n\n{link}".strip() if link else body
        emails = [u.email for u in group if u.email]
        try:
            send_mail(title, text, None, emails, fail_silently=False)
        except Exception:  # the in-app notification stands; a mail server hiccup is logged
            logger.exception("notifications.mail_failed firm=%s", firm.pk)
    return len(people)


def unread_count(user: User) -> int:
    return Notification.objects.filter(user=user, read_at=None).count()


def mark_read(*, user: User, ids: list[int] | None = None) -> int:
    """Mark the user's notifications read (all of them when `ids` is None)."""
    qs = Notification.objects.filter(user=user, read_at=None)
    if ids is not None:
        qs = qs.filter(pk__in=ids)
    return qs.update(read_at=timezone.now())
