from django.apps import AppConfig


class FirmsConfig(AppConfig):
    name = "practice.firms"
    label = "firms"
