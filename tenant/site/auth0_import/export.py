"""What a source gives the import: the M2M part of a tenant, read from an
Auth0-shaped Management API or a Deploy CLI export, in one shape.

Readers turn what they read into these objects and name what cannot come
over in ``left_out``; the plan compares them with the destination.
"""

from dataclasses import dataclass, field
from typing import Any

from tenant.text import is_text

KINDS = ("resource_servers", "clients", "client_grants", "hooks", "actions")
CREDENTIALS_EXCHANGE = "credentials-exchange"
# Auth0 (and Tessera) show a stored secret's value so when reading it back.
VALUE_NOT_SHOWN = "_VALUE_NOT_SHOWN_"


class ImportRefused(Exception):
    """Bad input or a source that cannot be read: one line for the user,
    and nothing written."""


@dataclass
class ApiSpec:
    identifier: str
    name: str
    scopes: list[tuple[str, str]]
    signing_alg: str = "RS256"
    token_lifetime: int = 86_400
    signing_secret: str | None = None


@dataclass
class ClientSpec:
    name: str
    client_id: str | None = None
    client_secret: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    token_endpoint_auth_method: str = "client_secret_post"
    description: str = ""


@dataclass
class GrantSpec:
    # A client id, or (in Deploy CLI files) the client's name.
    client: str
    audience: str
    scopes: list[str]


@dataclass
class HookSpec:
    name: str
    script: str
    enabled: bool
    dependencies: dict[str, str]
    # name -> value; None when the source keeps the value to itself.
    secrets: dict[str, str | None]


@dataclass
class ActionSpec:
    name: str
    code: str
    runtime: str
    dependencies: list[dict[str, str]]
    secrets: dict[str, str | None]
    deployed: bool


@dataclass
class BindingEntry:
    action_name: str
    display_name: str


@dataclass
class Export:
    """Everything read from one source."""

    source: str
    resource_servers: list[ApiSpec] = field(default_factory=list)
    clients: list[ClientSpec] = field(default_factory=list)
    client_grants: list[GrantSpec] = field(default_factory=list)
    hooks: list[HookSpec] = field(default_factory=list)
    actions: list[ActionSpec] = field(default_factory=list)
    # The credentials-exchange trigger's flow, in order; None when the source
    # says nothing of it (a directory without triggers/).
    bindings: list[BindingEntry] | None = None
    # What cannot come over, one line each: "rule: Add roles", "3 users".
    left_out: list[str] = field(default_factory=list)
    # Audiences of the source's own Management API: never imported.
    system_audiences: set[str] = field(default_factory=set)


def text(value: Any, where: str, *, required: bool = True, default: str = "") -> str:
    """A string field of the input, or the one line that says it is not one."""
    if value is None and not required:
        return default
    if not isinstance(value, str) or (required and not value):
        raise ImportRefused(f"{where} must be a non-empty string.")
    if not is_text(value):  # no database stores it: refused here, not as a crash mid-write
        raise ImportRefused(f"{where} holds a NUL character or a lone surrogate.")
    return value


def identifier(value: Any, where: str) -> str:
    """An id a service sends (a client_id): printable, without controls."""
    value = text(value, where)
    if not is_text(value, one_line=True):
        raise ImportRefused(f"{where} holds a control character.")
    return value


def mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ImportRefused(f"{where} must be an object.")
    return value


def listing(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ImportRefused(f"{where} must be a list.")
    return value


def is_m2m(client: dict[str, Any]) -> bool:
    """Whether an Auth0 client is a machine-to-machine one (what Tessera
    issues tokens to): non_interactive, or unmarked with client credentials."""
    if client.get("global"):
        return False  # Auth0's "All Applications" pseudo-client
    app_type = client.get("app_type")
    if app_type is not None:
        return bool(app_type == "non_interactive")
    grant_types = client.get("grant_types")
    return grant_types is None or "client_credentials" in grant_types


def api_spec(body: dict[str, Any], where: str) -> ApiSpec:
    scopes = []
    for index, scope in enumerate(listing(body.get("scopes"), f"{where}: scopes")):
        scope = mapping(scope, f"{where}: scopes[{index}]")
        value = text(scope.get("value"), f"{where}: scopes[{index}].value")
        description = text(scope.get("description"), f"{where}: scope {value}", required=False)
        scopes.append((value, description))
    lifetime = body.get("token_lifetime", 86_400)
    if not isinstance(lifetime, int) or isinstance(lifetime, bool):
        raise ImportRefused(f"{where}: token_lifetime must be a number of seconds.")
    secret = body.get("signing_secret")
    return ApiSpec(
        identifier=text(body.get("identifier"), f"{where}: identifier"),
        name=text(body.get("name"), f"{where}: name"),
        scopes=scopes,
        signing_alg=text(body.get("signing_alg"), f"{where}: signing_alg", required=False)
        or "RS256",
        token_lifetime=lifetime,
        signing_secret=secret if isinstance(secret, str) and secret else None,
    )


def client_spec(body: dict[str, Any], where: str) -> ClientSpec:
    metadata = mapping(body.get("client_metadata"), f"{where}: client_metadata")
    for key, value in metadata.items():
        if not isinstance(value, str):
            raise ImportRefused(f"{where}: client_metadata.{key} must be a string.")
        text(key, f"{where}: client_metadata key")
        text(value, f"{where}: client_metadata.{key}", required=False)
    client_id = body.get("client_id")
    secret = body.get("client_secret")
    method = body.get("token_endpoint_auth_method") or "client_secret_post"
    if method not in ("client_secret_post", "client_secret_basic"):
        raise ImportRefused(
            f"{where}: token_endpoint_auth_method {method!r} is not one Tessera offers "
            "(client_secret_post, client_secret_basic)."
        )
    return ClientSpec(
        name=text(body.get("name"), f"{where}: name"),
        client_id=identifier(client_id, f"{where}: client_id") if client_id is not None else None,
        client_secret=secret if isinstance(secret, str) and secret else None,
        metadata=dict(metadata),
        token_endpoint_auth_method=method,
        description=text(body.get("description"), f"{where}: description", required=False),
    )


def grant_spec(body: dict[str, Any], where: str) -> GrantSpec:
    scopes = listing(body.get("scope"), f"{where}: scope")
    if not all(isinstance(scope, str) for scope in scopes):
        raise ImportRefused(f"{where}: scope must be a list of strings.")
    return GrantSpec(
        client=text(body.get("client_id"), f"{where}: client_id"),
        audience=text(body.get("audience"), f"{where}: audience"),
        scopes=list(scopes),
    )


def hook_dependencies(value: Any, where: str) -> dict[str, str]:
    dependencies = mapping(value, f"{where}: dependencies")
    if not all(isinstance(v, str) for v in dependencies.values()):
        raise ImportRefused(f"{where}: dependencies must map names to versions.")
    return dict(dependencies)


def action_dependencies(value: Any, where: str) -> list[dict[str, str]]:
    cleaned = []
    for index, item in enumerate(listing(value, f"{where}: dependencies")):
        item = mapping(item, f"{where}: dependencies[{index}]")
        entry = {
            "name": text(item.get("name"), f"{where}: dependencies[{index}].name"),
            "version": text(
                item.get("version") or None,
                f"{where}: dependencies[{index}].version",
                required=False,
                default="latest",
            ),
        }
        if item.get("registry_url"):
            entry["registry_url"] = text(
                item["registry_url"], f"{where}: dependencies[{index}].registry_url"
            )
        cleaned.append(entry)
    return cleaned


def action_secrets(value: Any, where: str) -> dict[str, str | None]:
    secrets: dict[str, str | None] = {}
    for index, item in enumerate(listing(value, f"{where}: secrets")):
        item = mapping(item, f"{where}: secrets[{index}]")
        name = text(item.get("name"), f"{where}: secrets[{index}].name")
        given = item.get("value")
        secrets[name] = given if isinstance(given, str) and given != VALUE_NOT_SHOWN else None
    return secrets


def action_trigger(body: dict[str, Any], where: str) -> str:
    triggers = listing(body.get("supported_triggers"), f"{where}: supported_triggers")
    ids = [mapping(t, f"{where}: supported_triggers").get("id") for t in triggers]
    return str(ids[0]) if ids else ""
