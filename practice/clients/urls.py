from django.urls import path

from practice.clients import views

app_name = "clients"
urlpatterns = [
    path("accounts/", views.account_list, name="account_list"),
    path("accounts/new/", views.account_create, name="account_create"),
    path("accounts/<int:pk>/", views.account_detail, name="account_detail"),
    path("accounts/<int:pk>/edit/", views.account_edit, name="account_edit"),
    path("accounts/<int:pk>/archive/", views.account_archive, name="account_archive"),
    path("accounts/<int:pk>/unarchive/", views.account_unarchive, name="account_unarchive"),
]
