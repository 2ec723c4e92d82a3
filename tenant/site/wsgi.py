"""WSGI entry point: ``granian --interface wsgi tenant.site.wsgi:application``
(or ``gunicorn tenant.site.wsgi:application``). Importing it warms the process."""

import codecs
import os
from collections.abc import Callable, Iterable
from typing import Any

from django.core.wsgi import get_wsgi_application
from django.utils.http import parse_header_parameters

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tenant.site.settings")


def _is_text_codec(name: str) -> bool:
    try:
        info = codecs.lookup(name)
    except LookupError:
        return True  # Django ignores a charset it does not know
    return bool(getattr(info, "_is_text_encoding", True))


class TextCharsetsOnly:
    """WSGI wrapper: drop a ``charset`` that names a codec which is not a text
    encoding (``rot13``, ``base64``). Django builds the request with it, and
    with a query string present that fails before any middleware could
    answer (a plain 500)."""

    def __init__(self, application: Callable[..., Iterable[bytes]]) -> None:
        self.application = application

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        content_type = environ.get("CONTENT_TYPE", "")
        if "charset" in content_type.lower():
            main, params = parse_header_parameters(content_type)
            if not _is_text_codec(params.get("charset", "utf-8")):
                environ["CONTENT_TYPE"] = main
        return self.application(environ, start_response)


application = TextCharsetsOnly(get_wsgi_application())

from tenant.site.warmup import warm  # noqa: E402 - needs the app registry ready

warm()
