from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "practice.api"
    label = "api"
