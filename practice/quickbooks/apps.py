from django.apps import AppConfig


class QuickbooksConfig(AppConfig):
    name = "practice.quickbooks"
    label = "quickbooks"

    def ready(self) -> None:
        # Account sync: any account/billing change enqueues a run of the firm's realm (on commit),
        # and the accounts pages get the QuickBooks column, filter and counts through hooks.
        from django.db.models.signals import post_save

        from practice.common import events
        from practice.quickbooks import billing_status, selectors
        from practice.quickbooks.models import Connection
        from practice.quickbooks.sync import kinds, triggers  # noqa: F401  (kinds: registers the built-in record kinds)

        events.subscribe(triggers.on_record_changed)
        # Connecting or confirming the setup starts the first sync (enqueue only, on commit).
        post_save.connect(triggers.on_connection_saved, sender=Connection, dispatch_uid="qbo-sync-on-connect")
        selectors.install_hooks()
        billing_status.install_hooks()  # services, invoices and payments pages
