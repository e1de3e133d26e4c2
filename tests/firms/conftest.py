import pytest


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    # The role fixtures create four users; the default PBKDF2 costs ~0.4 s each on these cores.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
