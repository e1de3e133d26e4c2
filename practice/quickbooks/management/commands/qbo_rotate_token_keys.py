"""Re-encrypt every stored QBO token with the newest key of QBO_TOKEN_KEYS.

Key rotation: put a new key first in QBO_TOKEN_KEYS (keep the old ones after it), deploy, run
this command, then remove the old keys. `--generate-key` prints a fresh key to start with.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from practice.quickbooks.connection import tokens
from practice.quickbooks.models import Connection


class Command(BaseCommand):
    help = "Re-encrypt stored QuickBooks tokens with the newest QBO_TOKEN_KEYS key (key rotation)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--generate-key", action="store_true", help="Print a new Fernet key and exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["generate_key"]:
            self.stdout.write(tokens.generate_key())
            return
        rotated = skipped = 0
        for pk in Connection.objects.order_by("pk").values_list("pk", flat=True):
            for _attempt in range(5):
                row = (
                    Connection.objects.filter(pk=pk)
                    .values("token_version", "access_token_enc", "refresh_token_enc", "pending_tokens_enc")
                    .first()
                )
                if row is None:
                    break
                try:
                    new = {
                        "access_token_enc": tokens.rotate(row["access_token_enc"]),
                        "refresh_token_enc": tokens.rotate(row["refresh_token_enc"]),
                        "pending_tokens_enc": tokens.rotate(row["pending_tokens_enc"]),
                    }
                except tokens.InvalidToken as exc:
                    raise CommandError(
                        f"Connection {pk}: no key in QBO_TOKEN_KEYS opens its tokens; "
                        "keep the old key listed."
                    ) from exc
                # Conditional on token_version: a refresh that lands meanwhile wrote newer tokens
                # (already under the newest key); never overwrite them with the older ones.
                if Connection.objects.filter(
                    pk=pk,
                    token_version=row["token_version"],
                    access_token_enc=row["access_token_enc"],
                    refresh_token_enc=row["refresh_token_enc"],
                    pending_tokens_enc=row["pending_tokens_enc"],
                ).update(**new):
                    rotated += 1
                    break
            else:
                skipped += 1
        self.stdout.write(
            f"Re-encrypted tokens of {rotated} connection(s); {skipped} changed meanwhile, run again."
        )
