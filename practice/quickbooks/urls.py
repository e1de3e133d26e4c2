from django.urls import path

from practice.quickbooks import views

app_name = "quickbooks"
urlpatterns = [
    path("", views.settings_page, name="settings"),
]
