from django.apps import AppConfig


class CommonConfig(AppConfig):
    name = "practice.common"
    label = "common"
