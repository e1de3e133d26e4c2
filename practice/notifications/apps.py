from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "practice.notifications"
    label = "notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # QuickBooks runs report records that newly entered Error (practice/quickbooks/notify.py).
        from practice.quickbooks import notify

        notify.install()
