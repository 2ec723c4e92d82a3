"""ASGI entry point of the floor's async case
(``granian --interface asgi floor.asgi:application``)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "floor.settings")
application = get_asgi_application()
