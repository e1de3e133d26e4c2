"""Top-level URL map. Each domain app owns its own urls module."""

from django.contrib import admin
from django.urls import include, path

from practice.api.api import api
from practice.quickbooks.web import webhook_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("settings/api-tokens/", include("practice.api.urls")),
    path("", include("practice.firms.urls")),
    path("clients/", include("practice.clients.urls")),
    path("billing/", include("practice.billing.urls")),
    path("settings/integrations/quickbooks/", include("practice.quickbooks.urls")),
    path("notifications/", include("practice.notifications.urls")),
    # Intuit's change notifications (no sign-in: the intuit-signature HMAC authenticates them).
    # Also without the trailing slash: Intuit follows no redirect, and a 301 would be retried
    # forever as a failed delivery.
    path("webhooks/quickbooks/", webhook_views.quickbooks_webhook, name="quickbooks_webhook"),
    path("webhooks/quickbooks", webhook_views.quickbooks_webhook),
]
