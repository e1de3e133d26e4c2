from django.apps import AppConfig


class CommonConfig(AppConfig):
    name = "practice.common"
    label = "common"

    def ready(self) -> None:
        # Registers the production checks with Django's check framework.
        from practice.common import checks  # noqa: F401
