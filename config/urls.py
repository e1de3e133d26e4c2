"""Top-level URL map. Each domain app owns its own urls module."""

from django.contrib import admin
from django.urls import include, path

from practice.api.api import api

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
]
