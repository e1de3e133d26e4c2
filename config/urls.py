"""Top-level URL map. Each domain app owns its own urls module."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("practice.firms.urls")),
    path("clients/", include("practice.clients.urls")),
    path("billing/", include("practice.billing.urls")),
    path("settings/integrations/quickbooks/", include("practice.quickbooks.urls")),
]
