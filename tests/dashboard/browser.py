"""Helpers for the dashboard's browser tests (headless Debian Chromium driven
by Playwright); the fixtures that use them are in conftest.py."""

import json
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest

from clients.services import client_rotate_secret
from hooks.models import Hook
from tests.factories import TEST_ACTOR

# Playwright's sync API runs an event loop in this thread; the ORM calls the
# tests make alongside it are ordinary synchronous calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("TESSERA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# `make screenshots` points this at docs/screenshots/; an ordinary test run
# writes to a temporary directory, so that it leaves the tree clean.
SCREENSHOTS = Path(
    os.environ.get("TESSERA_SCREENSHOTS_DIR")
    or Path(tempfile.gettempdir()) / f"tessera-screenshots-{os.getuid()}"
)

# Screenshots a developer looks at to review the product (never committed).
REVIEW_SHOTS = Path(tempfile.gettempdir()) / f"tessera-review-{os.getuid()}"

BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    # Skipped only on a developer machine without Chromium; CI requires it.
    pytest.mark.skipif(
        not shutil.which(CHROMIUM) and not os.environ.get("TESSERA_REQUIRE_BROWSER"),
        reason=f"{CHROMIUM} is not installed (make test installs it as root)",
    ),
]


HTTP_ERROR_CONSOLE = "Failed to load resource: the server responded with a status of "


@dataclass
class PageProblems:
    """Console errors, uncaught exceptions and failed requests of one page
    (a browser context), recorded as they happen."""

    items: list[str] = field(default_factory=list)

    def watch(self, page: Any) -> None:
        page.on(
            "console",
            lambda m: (
                self.items.append(f"console {m.type}: {m.text} ({m.location})")
                # Chromium's "Failed to load resource: … status of 404" repeats
                # an HTTP error the "response" handler below records.
                if m.type == "error" and not m.text.startswith(HTTP_ERROR_CONSOLE)
                else None
            ),
        )
        page.on("pageerror", lambda e: self.items.append(f"uncaught: {e}"))
        page.on(
            "requestfailed",
            lambda r: (
                self.items.append(f"request failed: {r.url} {r.failure}")
                if r.failure != "net::ERR_ABORTED"  # a navigation that replaced a poll
                else None
            ),
        )
        page.on(
            "response",
            lambda r: self.items.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None,
        )

    def clear(self) -> None:
        self.items.clear()


def log_in(page, live_server, username: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", "pw-" + username)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")


def hook_url(live_server, hook: Hook) -> str:  # type: ignore[no-untyped-def]
    return f"{live_server.url}/admin/hooks/hook/{hook.pk}/change/"


def wait_for_editor(page) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_function("() => window.tesseraHookEditor !== undefined")


def fresh_secret(world) -> str:  # type: ignore[no-untyped-def]
    """A new secret for the world's client (the old one stops working)."""
    return client_rotate_secret(client=world.client, actor=TEST_ACTOR)


def token_claims(world, secret: str, client: Any = None) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """A fresh token for ``client`` (the world's own by default) and its
    ``secret``, over real HTTP to the world's issuer, decoded."""
    body = json.dumps(
        {
            "grant_type": "client_credentials",
            "client_id": (client or world.client).client_id,
            "client_secret": secret,
            "audience": world.api.identifier,
        }
    ).encode()
    request = urllib.request.Request(
        f"{world.tenant.issuer}oauth/token", body, {"content-type": "application/json"}
    )
    with urllib.request.urlopen(request) as response:
        token = json.load(response)["access_token"]
    return dict(jwt.decode(token, options={"verify_signature": False}))
