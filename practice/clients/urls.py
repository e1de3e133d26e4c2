from django.urls import path

from practice.clients import views

app_name = "clients"
urlpatterns = [
    path("accounts/", views.account_list, name="account_list"),
]
