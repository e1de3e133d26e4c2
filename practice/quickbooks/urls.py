from django.urls import path

from practice.quickbooks import views

app_name = "quickbooks"
urlpatterns = [
    # Settings > Integrations > QuickBooks (connection and setup).
    path("", views.settings_page, name="settings"),
    path("connect/", views.connect, name="connect"),
    # Must match settings.QBO_REDIRECT_URI (registered with Intuit / the sandbox).
    path("callback/", views.callback, name="callback"),
    path("setup/", views.setup, name="setup"),
    path("disconnect/", views.disconnect, name="disconnect"),
    path("start-over/", views.start_over, name="start_over"),
]
