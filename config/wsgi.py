"""WSGI entry point (gunicorn serves the app; ASGI was 8-10x slower here, see docs/adr)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()
