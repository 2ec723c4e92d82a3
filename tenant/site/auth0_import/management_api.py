"""Read a tenant through an Auth0-shaped Management API (an Auth0 tenant's
domain, or another Tessera tenant's issuer).

It gets its own token with the client credentials given (audience
``{base}/api/v2/``), pages through every list (``page``/``per_page``/
``include_totals``, checkpoint ``from``/``take`` for client grants, as
Auth0 does), and waits out a 429 for its ``Retry-After`` or
``X-RateLimit-Reset``.
"""

import json
import os
import time
from collections.abc import Callable, Iterator
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import certifi
import urllib3

from tenant.site.auth0_import.export import (
    CREDENTIALS_EXCHANGE,
    KINDS,
    VALUE_NOT_SHOWN,
    ActionSpec,
    BindingEntry,
    Export,
    HookSpec,
    ImportRefused,
    action_dependencies,
    action_secrets,
    action_trigger,
    api_spec,
    client_spec,
    grant_spec,
    hook_dependencies,
    is_m2m,
    mapping,
    text,
)

PER_PAGE = 100
MAX_RATE_LIMIT_WAITS = 10
MAX_WAIT_S = 60.0
# A source is read within bounds, whatever it answers: at most this many
# pages of one list (100,000 items: no tenant has more), this much of one
# body, and this long for one answer (a body that drips never ends otherwise).
MAX_PAGES = 1000
MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_ANSWER_S = 120.0
# What each list needs of the token; a 403 names it.
SCOPES = {
    "resource-servers": "read:resource_servers",
    "clients": "read:clients",
    "client-grants": "read:client_grants",
    "hooks": "read:hooks",
    "actions": "read:actions",
}
# What other parts of a tenant are counted (best effort: a token without the
# scope, or a server without the list, leaves the count out).
COUNTED = (("rules", "rules"), ("connections", "connections"), ("users", "users"))


def base_url(source: str) -> str:
    """``https://acme.eu.auth0.com`` from a domain, a URL or an issuer."""
    source = source.strip()
    if "://" not in source:
        source = f"https://{source}"
    parts = urlsplit(source)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ImportRefused(f"--from must be a domain or an https URL, got {source!r}.")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


class ManagementApiClient:
    """A Management API session: one token, JSON in and out.

    ``connect_to`` is the address to connect to for the source's host, as a
    check found it (the name is not resolved again: a name that also, or
    later, resolves to a private address does not reach it); TLS still
    verifies the certificate for the host."""

    def __init__(
        self,
        base: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        timeout_s: float = 30.0,
        answer_s: float = MAX_ANSWER_S,
        connect_to: str | None = None,
    ) -> None:
        self.base = base
        self.api = f"{base}/api/v2/"
        self.sleep = sleep
        self.answer_s = answer_s
        parts = urllib3.util.parse_url(base)
        host = parts.host or ""
        self.host_header = parts.netloc or host
        options: dict[str, Any] = {
            "timeout": urllib3.Timeout(connect=10.0, read=timeout_s),
            "retries": False,
        }
        pool: type[urllib3.HTTPConnectionPool] = urllib3.HTTPConnectionPool
        if parts.scheme == "https":
            pool = urllib3.HTTPSConnectionPool
            # SSL_CERT_FILE names extra roots, as for Python's own ssl module.
            options["ca_certs"] = os.environ.get("SSL_CERT_FILE") or certifi.where()
            options["server_hostname"] = host.strip("[]")
            options["assert_hostname"] = host.strip("[]")
        self.http = pool(connect_to or host.strip("[]"), parts.port, **options)
        self.token = ""

    def request(self, method: str, url: str, body: Any = None) -> tuple[int, Any, Any]:
        """Status, decoded JSON (or None) and headers; a 429 is waited out."""
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        payload = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            payload = json.dumps(body).encode()
        headers["Host"] = self.host_header
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        for _ in range(MAX_RATE_LIMIT_WAITS + 1):
            try:
                response = self.http.urlopen(
                    method,
                    target,
                    body=payload,
                    headers=headers,
                    redirect=False,
                    preload_content=False,
                )
                data = self._body(response, f"{method} {parts.path}")
            except urllib3.exceptions.HTTPError as error:
                reason = getattr(error, "reason", None) or error
                raise ImportRefused(f"Cannot reach the source {self.base}: {reason}") from None
            if response.status != 429:
                return response.status, _json(data), response.headers
            self.sleep(_rate_limit_wait(response.headers))
        raise ImportRefused(f"The source {self.base} kept answering 429 Too Many Requests.")

    def _body(self, response: urllib3.BaseHTTPResponse, what: str) -> bytes:
        """The answer's body, refused past ``MAX_BODY_BYTES`` or ``answer_s``."""
        deadline = time.monotonic() + self.answer_s
        chunks: list[bytes] = []
        size = 0
        read_whole = False
        try:
            while chunk := response.read1(64 * 1024):
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise ImportRefused(
                        f"The source {self.base} answered {what} with more than "
                        f"{MAX_BODY_BYTES // (1024 * 1024)} MB."
                    )
                if time.monotonic() > deadline:
                    raise ImportRefused(
                        f"The source {self.base} took longer than {self.answer_s:g} s "
                        f"to answer {what}."
                    )
                chunks.append(chunk)
            read_whole = True
        finally:
            # A connection left mid-answer is not reused.
            if read_whole:
                response.release_conn()
            else:
                response.close()
        return b"".join(chunks)

    def authenticate(self, client_id: str, client_secret: str) -> None:
        status, body, _ = self.request(
            "POST",
            f"{self.base}/oauth/token",
            {
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": client_secret,
                "audience": self.api,
            },
        )
        if status != 200 or not isinstance(body, dict) or "access_token" not in body:
            raise ImportRefused(
                f"The source {self.base} refused the client credentials ({status} {_said(body)})."
            )
        self.token = str(body["access_token"])

    def get(self, path: str, query: dict[str, Any] | None = None) -> tuple[int, Any]:
        url = f"{self.api}{path}" + (f"?{urlencode(query)}" if query else "")
        status, body, _ = self.request("GET", url)
        return status, body

    def read(self, path: str, query: dict[str, Any] | None = None) -> Any:
        """GET ``path``; anything but 200 is one line (a 403 names the scope)."""
        status, body = self.get(path, query)
        if status == 200:
            return body
        scope = SCOPES.get(path.split("/")[0])
        if status in (401, 403) and scope:
            raise ImportRefused(
                f"The source refused GET /api/v2/{path} ({status} {_said(body)}): "
                f"the client needs the {scope} scope."
            )
        raise ImportRefused(f"The source answered GET /api/v2/{path} with {status}: {_said(body)}")

    def pages(self, path: str, key: str) -> Iterator[dict[str, Any]]:
        """Every item of a page-paginated list (``page`` from 0)."""
        page, seen = 0, 0
        while True:
            _check_pages(page, path, self.base)
            body = self.read(path, {"page": page, "per_page": PER_PAGE, "include_totals": "true"})
            items, total = _page_items(body, key)
            yield from items
            seen += len(items)
            if not items or (total is not None and seen >= total) or len(items) < PER_PAGE:
                return
            page += 1

    def checkpoints(self, path: str, key: str) -> Iterator[dict[str, Any]]:
        """Every item of a checkpoint-paginated list (``from``/``take``/``next``)."""
        query: dict[str, Any] = {"take": PER_PAGE}
        page = 0
        while True:
            _check_pages(page, path, self.base)
            body = mapping(self.read(path, query), f"GET /api/v2/{path}")
            items, _ = _page_items(body, key)
            yield from items
            following = body.get("next")
            if not following or not items:
                return
            query = {"take": PER_PAGE, "from": following}
            page += 1


def _check_pages(page: int, path: str, base: str) -> None:
    if page >= MAX_PAGES:
        raise ImportRefused(
            f"The source {base} kept answering pages of /api/v2/{path} "
            f"(more than {MAX_PAGES * PER_PAGE} items): it is not read further."
        )


def _json(data: bytes) -> Any:
    try:
        return json.loads(data) if data else None
    except ValueError:
        return None


def _said(body: Any) -> str:
    if isinstance(body, dict):
        for key in ("message", "error_description", "error"):
            if body.get(key):
                return str(body[key])[:300]
    return "no JSON body"


def _rate_limit_wait(headers: Any) -> float:
    """Seconds a 429 asks to wait: Retry-After (seconds or a date), else
    X-RateLimit-Reset (epoch seconds), else one second; at most a minute."""
    retry_after = headers.get("Retry-After")
    if retry_after:
        try:
            return min(max(float(retry_after), 0.0), MAX_WAIT_S)
        except ValueError:
            try:
                when = parsedate_to_datetime(retry_after).timestamp()
                return min(max(when - time.time(), 0.0), MAX_WAIT_S)
            except (TypeError, ValueError):
                pass
    reset = headers.get("X-RateLimit-Reset")
    if reset:
        try:
            return min(max(float(reset) - time.time(), 0.0), MAX_WAIT_S)
        except ValueError:
            pass
    return 1.0


def _page_items(body: Any, key: str) -> tuple[list[dict[str, Any]], int | None]:
    if isinstance(body, list):
        return [item for item in body if isinstance(item, dict)], None
    if isinstance(body, dict) and isinstance(body.get(key), list):
        total = body.get("total")
        items = [item for item in body[key] if isinstance(item, dict)]
        return items, total if isinstance(total, int) else None
    raise ImportRefused(f"The source's {key} list is not an Auth0 list.")


def read_management_api(
    source: str,
    *,
    client_id: str,
    client_secret: str,
    only: tuple[str, ...] = KINDS,
    sleep: Callable[[float], None] = time.sleep,
    connect_to: str | None = None,
) -> Export:
    """Everything of the M2M part of the tenant at ``source`` that ``only``
    names, with what cannot come over listed (``connect_to``: see
    ``ManagementApiClient``)."""
    if not client_id or not client_secret:
        raise ImportRefused(
            "--from needs --client-id and --client-secret (or AUTH0_CLIENT_ID and "
            "AUTH0_CLIENT_SECRET)."
        )
    client = ManagementApiClient(base_url(source), sleep=sleep, connect_to=connect_to)
    client.authenticate(client_id, client_secret)
    export = Export(source=client.base, system_audiences={client.api})
    if "resource_servers" in only or "client_grants" in only:
        for index, body in enumerate(client.pages("resource-servers", "resource_servers")):
            if body.get("is_system"):
                export.system_audiences.add(str(body.get("identifier")))
                continue
            spec = api_spec(body, f"resource server {index}")
            if "resource_servers" in only:
                export.resource_servers.append(spec)
    if "clients" in only or "client_grants" in only:
        for index, body in enumerate(client.pages("clients", "clients")):
            if not is_m2m(body):
                if not body.get("global"):
                    kind = body.get("app_type") or "interactive"
                    export.left_out.append(f"client {body.get('name')} ({kind})")
                continue
            if "clients" in only:
                export.clients.append(client_spec(body, f"client {index}"))
    if "client_grants" in only:
        for index, body in enumerate(client.checkpoints("client-grants", "client_grants")):
            export.client_grants.append(grant_spec(body, f"client grant {index}"))
    if "hooks" in only:
        _read_hooks(client, export)
    if "actions" in only:
        _read_actions(client, export)
    _count_the_rest(client, export)
    return export


def _hooks_retired(client: ManagementApiClient) -> bool:
    """Whether the source has no Hooks at all: Auth0 retired them, and a
    tenant without the feature answers 404, or 403 with a reason other than
    a missing scope (the Deploy CLI tolerates both the same way)."""
    status, body = client.get("hooks", {"page": 0, "per_page": 1})
    return status == 404 or (status == 403 and "scope" not in _said(body).lower())


def _read_hooks(client: ManagementApiClient, export: Export) -> None:
    if _hooks_retired(client):
        return
    for listed in list(client.pages("hooks", "hooks")):
        hook_id = text(listed.get("id"), "hook id")
        if listed.get("triggerId") != CREDENTIALS_EXCHANGE:
            export.left_out.append(f"hook {listed.get('name')} ({listed.get('triggerId')})")
            continue
        # Auth0's list leaves out the script; the hook and its secret names
        # are read one by one, as the Deploy CLI does.
        body = mapping(client.read(f"hooks/{quote(hook_id)}"), f"hook {hook_id}")
        names = mapping(client.read(f"hooks/{quote(hook_id)}/secrets"), f"hook {hook_id} secrets")
        where = f"hook {body.get('name')}"
        export.hooks.append(
            _hook(
                body,
                where,
                {name: None if v == VALUE_NOT_SHOWN else v for name, v in names.items()},
            )
        )


def _hook(body: dict[str, Any], where: str, secrets: dict[str, Any]) -> HookSpec:
    return HookSpec(
        name=text(body.get("name"), f"{where}: name"),
        script=text(body.get("script"), f"{where}: script"),
        enabled=bool(body.get("enabled")),
        dependencies=hook_dependencies(body.get("dependencies"), where),
        secrets={str(k): v if isinstance(v, str) else None for k, v in secrets.items()},
    )


def _read_actions(client: ManagementApiClient, export: Export) -> None:
    for body in client.pages("actions/actions", "actions"):
        where = f"action {body.get('name')}"
        trigger = action_trigger(body, where)
        if trigger != CREDENTIALS_EXCHANGE:
            export.left_out.append(f"action {body.get('name')} ({trigger or 'no trigger'})")
            continue
        deployed = body.get("deployed_version")
        # What runs at the source is its deployed version: that is what comes
        # over (and is deployed here); draft changes not deployed there are listed.
        live = deployed if isinstance(deployed, dict) and deployed.get("code") else body
        if live is not body and body.get("all_changes_deployed") is False:
            export.left_out.append(f"action {body.get('name')}: draft changes not deployed")
        export.actions.append(
            ActionSpec(
                name=text(body.get("name"), f"{where}: name"),
                code=text(live.get("code"), f"{where}: code"),
                runtime=text(live.get("runtime"), f"{where}: runtime", required=False) or "node22",
                dependencies=action_dependencies(live.get("dependencies"), where),
                secrets=action_secrets(body.get("secrets"), where),
                deployed=isinstance(deployed, dict),
            )
        )
    export.bindings = [
        BindingEntry(
            action_name=text(mapping(item.get("action"), "binding").get("name"), "binding action"),
            display_name=str(item.get("display_name") or ""),
        )
        for item in client.pages(f"actions/triggers/{CREDENTIALS_EXCHANGE}/bindings", "bindings")
    ]


def _count_the_rest(client: ManagementApiClient, export: Export) -> None:
    export.left_out.append("signing keys (Tessera signs with its own, published in its JWKS)")
    for path, key in COUNTED:
        status, body = client.get(path, {"per_page": 1, "include_totals": "true"})
        if status != 200:
            continue
        total = body.get("total") if isinstance(body, dict) else None
        if isinstance(total, int) and total:
            export.left_out.append(f"{total} {key}")
