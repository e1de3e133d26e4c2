from django.apps import AppConfig


class QuickbooksConfig(AppConfig):
    name = "practice.quickbooks"
    label = "quickbooks"
