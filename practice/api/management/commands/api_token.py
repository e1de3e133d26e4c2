"""Create a personal API token for a user from the shell (scripts, the README walk-through).

The profile page does the same for people; this prints the secret once, like the page.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from practice.api.tokens import token_create
from practice.firms.models import User


class Command(BaseCommand):
    help = "Create an API token for the user with this e-mail and print it (shown only once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")
        parser.add_argument("--name", default="command line")

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(email=options["email"].strip().lower()).first()
        if user is None:
            raise CommandError(f"No user with e-mail {options['email']}.")
        try:
            _, secret = token_create(user=user, name=options["name"])
        except ValidationError as e:
            raise CommandError("; ".join(e.messages)) from e
        self.stdout.write(secret)
