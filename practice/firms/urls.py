from django.contrib.auth import views as auth_views
from django.urls import path

from practice.firms import views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("settings/profile/", views.profile, name="profile"),
    path("settings/language/", views.language_switch, name="language_switch"),
]
