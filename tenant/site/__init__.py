"""The site: the Django project that wires every app together.

Settings, root and issuer URLconfs, WSGI, middleware, the admin site and its
landing page, warm-up, health and metrics endpoints, and the provisioning
commands (``tenant``, ``demo``). It sits above every app and may import any of
them; nothing below imports it. The tenancy base is the rest of ``tenant/``.
"""
