from django.apps import AppConfig


class QuickbooksConfig(AppConfig):
    name = "practice.quickbooks"
    label = "quickbooks"

    def ready(self) -> None:
        # Account sync: any account/billing change enqueues a run of the firm's realm (on commit),
        # and the accounts pages get the QuickBooks column, filter and counts through hooks.
        from practice.common import events
        from practice.quickbooks import selectors, services

        events.subscribe(services.on_record_changed)
        selectors.install_hooks()
