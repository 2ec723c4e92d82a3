"""WSGI entry point: ``granian --interface wsgi tenant.site.wsgi:application``
(or ``gunicorn tenant.site.wsgi:application``). Importing it warms the process."""

import codecs
import os
import signal
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NoReturn

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


class OneTokenAtATime:
    """WSGI wrapper: a token request holds the process's compute gate
    (``hooks.runtime.ComputeGate``) while it runs, and its hook lets it go
    while it waits on an upstream or for its tenant's slot. The server runs
    many threads so that such waits do not hold it up (README, "Configuration");
    the gate keeps them from all computing at once, contending for the GIL.
    Tenants (``/<tenant>/oauth/token``) take turns at it."""

    def __init__(self, application: Callable[..., Iterable[bytes]]) -> None:
        self.application = application

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if not path.endswith("/oauth/token"):
            return self.application(environ, start_response)
        gate = execution.compute_gate  # the process's own, after a fork too
        gate.enter(path.removesuffix("/oauth/token"))
        try:
            return self.application(environ, start_response)
        finally:
            gate.leave()


application = OneTokenAtATime(TextCharsetsOnly(get_wsgi_application()))

from django.conf import settings  # noqa: E402

from hooks import execution  # noqa: E402 - needs the app registry ready
from tenant.crypto import KekError  # noqa: E402 - needs the app registry ready
from tenant.site.affinity import pin_to_a_cpu_of_its_own  # noqa: E402
from tenant.site.warmup import warm  # noqa: E402


def refuse_to_start(error: KekError) -> NoReturn:
    """One line, no traceback, and no server: with a key-encryption key that
    reads none of the database, every token would be a 500. granian would
    respawn a worker that exits for ever (``--respawn-failed-workers``), so
    a worker of granian stops its server; gunicorn's arbiter halts by itself
    on a worker's exit status 3 (a worker that cannot boot)."""
    sys.stderr.write(f"Tessera cannot start: {error}\n")
    sys.stderr.flush()
    server = os.getppid()
    try:
        command = Path(f"/proc/{server}/cmdline").read_bytes()
    except OSError:
        command = b""
    if b"granian" in command:
        os.kill(server, signal.SIGTERM)
    os._exit(3)


try:
    warm()
except KekError as error:
    refuse_to_start(error)
if settings.TESSERA_PIN_WORKERS:
    pin_to_a_cpu_of_its_own()
