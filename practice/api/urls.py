from django.urls import path

from practice.api import views

app_name = "api"

urlpatterns = [
    path("", views.api_token_create, name="token_create"),
    path("<int:token_id>/revoke/", views.api_token_revoke, name="token_revoke"),
]
