"""Sign-in, the profile page and the language a user sees (English, Spanish, browser default)."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from practice.clients.services import account_create
from practice.firms.models import User
from tests.conftest import PASSWORD, ROLE_EMAILS

MEMBERS = ["owner", "admin", "employee"]


def test_login_takes_members_to_the_accounts_list(firm):
    c = Client()
    response = c.post(reverse("login"), {"username": "OWNER@acme.test", "password": PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("clients:account_list")
    assert response.status_code == 200


def test_signed_in_users_skip_the_login_page(client_as):
    assert client_as("owner").get(reverse("login")).status_code == 302


def test_anonymous_users_are_sent_to_login_with_next(db):
    response = Client().get(reverse("clients:account_list") + "?q=x")
    assert response.status_code == 302
    assert response["Location"] == reverse("login") + "?next=/clients/accounts/%3Fq%3Dx"


def test_htmx_requests_of_anonymous_users_get_401(db):
    assert Client().get(reverse("clients:account_list"), HTTP_HX_REQUEST="true").status_code == 401


@pytest.mark.parametrize("field", ["username", "password"])
def test_login_with_a_missing_field_is_400_naming_it(firm, field):
    data = {"username": ROLE_EMAILS["owner"], "password": PASSWORD}
    data[field] = ""
    response = Client().post(reverse("login"), data)
    assert response.status_code == 400
    assert f'data-field="{field}"'.encode() in response.content


# --- profile: role matrix ----------------------------------------------------------------------


@pytest.mark.parametrize("who", ["anonymous", *MEMBERS, "other"])
def test_profile_page(client_as, who):
    c = client_as(who)
    response = c.get(reverse("profile"))
    if who == "anonymous":
        assert response.status_code == 302
        assert c.post(reverse("profile"), {"language": "es"}).status_code == 302
        return
    assert response.status_code == 200
    assert ROLE_EMAILS[who].encode() in response.content
    assert c.post(reverse("profile"), {"language": "es"}).status_code == 302
    # Each user changes only their own preference.
    assert User.objects.get(email=ROLE_EMAILS[who]).language == "es"
    others = User.objects.exclude(email=ROLE_EMAILS[who]).values_list("language", flat=True)
    assert set(others) == {""}


@pytest.mark.parametrize("bad", ["fr", "xx-YY", "es\x00", "e" * 100])
def test_profile_rejects_unknown_languages_with_400(client_as, bad):
    c = client_as("employee")
    response = c.post(reverse("profile"), {"language": bad})
    assert response.status_code == 400
    assert b'data-field="language"' in response.content
    assert User.objects.get(email=ROLE_EMAILS["employee"]).language == ""


def test_profile_can_go_back_to_the_browser_default(client_as):
    c = client_as("employee")
    c.post(reverse("profile"), {"language": "es"})
    c.post(reverse("profile"), {"language": ""})
    assert User.objects.get(email=ROLE_EMAILS["employee"]).language == ""


# --- which language a page is in ---------------------------------------------------------------


def test_spanish_user_sees_spanish_pages(client_as, firm):
    User.objects.filter(email=ROLE_EMAILS["owner"]).update(language="es")
    account = account_create(firm=firm, name="Alvarez & Sons")
    c = client_as("owner")
    response = c.get(reverse("clients:account_list"), HTTP_ACCEPT_LANGUAGE="en")
    assert response["Content-Language"] == "es"
    body = response.content.decode()
    assert '<html lang="es">' in body
    assert "Cuentas" in body and "Nueva cuenta" in body and "Buscar" in body
    assert "New account" not in body
    detail = c.get(reverse("clients:account_detail", args=[account.pk])).content.decode()
    assert "Editar" in detail and "Archivar" in detail and "Correo electrónico" in detail
    form = c.get(reverse("clients:account_create")).content.decode()
    assert "Nombre" in form and "Particular" in form


def test_english_user_sees_english_whatever_the_browser_says(client_as):
    User.objects.filter(email=ROLE_EMAILS["owner"]).update(language="en")
    response = client_as("owner").get(reverse("clients:account_list"), HTTP_ACCEPT_LANGUAGE="es")
    assert response["Content-Language"] == "en"
    assert b"New account" in response.content


def test_browser_default_follows_accept_language(client_as):
    c = client_as("owner")
    assert (
        c.get(reverse("clients:account_list"), HTTP_ACCEPT_LANGUAGE="es-MX,es;q=0.9")["Content-Language"]
        == "es"
    )
    assert (
        c.get(reverse("clients:account_list"), HTTP_ACCEPT_LANGUAGE="fr,en;q=0.5")["Content-Language"] == "en"
    )


def test_validation_errors_are_translated(client_as):
    User.objects.filter(email=ROLE_EMAILS["owner"]).update(language="es")
    response = client_as("owner").post(reverse("clients:account_create"), {"name": "", "kind": "individual"})
    assert response.status_code == 400
    assert "Este campo es obligatorio." in response.content.decode()


# --- the language menu in the top bar ----------------------------------------------------------


def test_language_switch_saves_the_choice_of_a_signed_in_user(client_as):
    c = client_as("admin")
    response = c.post(reverse("language_switch"), {"language": "es", "next": reverse("profile")})
    assert response.status_code == 302
    assert response["Location"] == reverse("profile")
    assert User.objects.get(email=ROLE_EMAILS["admin"]).language == "es"
    assert c.get(reverse("profile"))["Content-Language"] == "es"


def test_language_switch_for_anonymous_users_uses_a_cookie(db):
    c = Client()
    response = c.post(reverse("language_switch"), {"language": "es", "next": reverse("login")})
    assert response.status_code == 302
    cookie = response.cookies[settings.LANGUAGE_COOKIE_NAME]
    assert cookie.value == "es" and cookie["httponly"] is True and cookie["samesite"] == "Lax"
    page = c.get(reverse("login"))
    assert page["Content-Language"] == "es"
    assert "Iniciar sesión" in page.content.decode()


@pytest.mark.parametrize("bad", ["", "fr", "es\x00"])
def test_language_switch_rejects_unknown_languages(client_as, bad):
    response = client_as("admin").post(reverse("language_switch"), {"language": bad})
    assert response.status_code == 400
    assert User.objects.get(email=ROLE_EMAILS["admin"]).language == ""


def test_language_switch_is_post_only(client_as):
    assert client_as("admin").get(reverse("language_switch")).status_code == 405
