from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "practice.billing"
    label = "billing"
