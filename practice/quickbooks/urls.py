from django.urls import path

from practice.quickbooks.web import views

app_name = "quickbooks"
urlpatterns = [
    # Settings > Integrations > QuickBooks (connection and setup).
    path("", views.settings_page, name="settings"),
    path("connect/", views.connect, name="connect"),
    # Must match settings.QBO_REDIRECT_URI (registered with Intuit / the sandbox).
    path("callback/", views.callback, name="callback"),
    path("setup/", views.setup, name="setup"),
    path("setup/confirm/", views.setup_confirm, name="setup_confirm"),
    path("check/", views.check, name="check"),
    path("disconnect/", views.disconnect, name="disconnect"),
    path("start-over/", views.start_over, name="start_over"),
]

# Account sync (practice/quickbooks/web/sync_views.py).
from practice.quickbooks.web import sync_views  # noqa: E402

urlpatterns += [
    path("accounts/<int:pk>/panel/", sync_views.account_sync_panel, name="account_sync_panel"),
    path("accounts/<int:pk>/customers/", sync_views.customer_picker, name="customer_picker"),
    path("accounts/<int:pk>/link/", sync_views.account_link, name="account_link"),
    path(
        "accounts/<int:pk>/create-customer/",
        sync_views.account_create_customer,
        name="account_create_customer",
    ),
    path("accounts/<int:pk>/reactivate/", sync_views.account_reactivate, name="account_reactivate"),
    path("accounts/<int:pk>/unsync/", sync_views.account_unsync, name="account_unsync"),
    path("accounts/<int:pk>/retry/", sync_views.account_retry, name="account_retry"),
    path("accounts/bulk/", sync_views.accounts_bulk, name="accounts_bulk"),
    path("accounts/status/", sync_views.account_status_poll, name="account_status_poll"),
]
urlpatterns += [path("accounts/preview/", sync_views.sync_preview, name="sync_preview")]
urlpatterns += [
    path("invoices/<int:pk>/renumber/", sync_views.invoice_renumber, name="invoice_renumber"),
]

# Services, invoices and payments (practice/quickbooks/web/billing_views.py); kind is
# "service", "invoice" or "payment", action "sync", "unsync" or "retry" (others are 404).
from practice.quickbooks.web import billing_views  # noqa: E402

urlpatterns += [
    path("records/<str:kind>/<int:pk>/panel/", billing_views.record_sync_panel, name="record_sync_panel"),
    path("records/<str:kind>/<int:pk>/<str:action>/", billing_views.record_action, name="record_action"),
    # Fixes of a record changed in QuickBooks (push_ours, accept_qbo, push_again; sync/drift.py).
    path("records/<str:kind>/<int:pk>/drift/<str:action>/", billing_views.drift_action, name="drift_action"),
]

# Problems page and its retries (practice/quickbooks/web/problems_views.py).
from practice.quickbooks.web import problems_views  # noqa: E402

urlpatterns += [
    path("problems/", problems_views.problems_page, name="problems"),
    path("problems/<str:kind>/<int:pk>/retry/", problems_views.problem_retry, name="problem_retry"),
    path("problems/<str:kind>/retry-all/", problems_views.problems_retry_all, name="problems_retry_all"),
]

# Reconciliation page, its refresh and CSV (practice/quickbooks/web/reconciliation_views.py).
from practice.quickbooks.web import reconciliation_views  # noqa: E402

urlpatterns += [
    path("reconciliation/", reconciliation_views.reconciliation_page, name="reconciliation"),
    path(
        "reconciliation/refresh/", reconciliation_views.reconciliation_refresh, name="reconciliation_refresh"
    ),
    path("reconciliation/export.csv", reconciliation_views.reconciliation_csv, name="reconciliation_csv"),
]
