"""Read what the Auth0 Deploy CLI exports (``a0deploy export``), in its
directory format and its YAML format, with its keyword replacement.

The layouts are the CLI's own (``lib/context/directory/handlers`` and
``lib/context/yaml/handlers`` of auth0-deploy-cli 8):

- directory: ``resource-servers/*.json``, ``clients/*.json``,
  ``grants/*.json`` (``client_id`` may be the client's name),
  ``hooks/<name>.json`` whose ``script`` is a path relative to ``hooks/``,
  ``actions/<name>.json`` whose ``code`` is a path relative to the root
  (``./actions/<name>/code.js``), and ``triggers/triggers.json``
  (``{"<trigger>": [{"action_name", "display_name"}]}``);
- YAML: one file with ``resourceServers``, ``clients``, ``clientGrants``,
  ``hooks``, ``actions`` and ``triggers``, script paths relative to the
  file's folder.

Keywords (``--keywords``, ``{"KEY": value}``) are replaced in every file's
text before it is parsed, as the CLI does: ``@@KEY@@`` (with or without the
quotes around it) by the value as JSON, then ``##KEY##`` by the value as is.
"""

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

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
    listing,
    mapping,
    text,
)
from tenant.text import is_text

FOLDERS = {
    "resource_servers": "resource-servers",
    "clients": "clients",
    "client_grants": "grants",
    "hooks": "hooks",
    "actions": "actions",
}
YAML_KEYS = {
    "resource_servers": "resourceServers",
    "clients": "clients",
    "client_grants": "clientGrants",
    "hooks": "hooks",
    "actions": "actions",
}
# Folders and YAML keys of the rest of a tenant: counted, never imported.
OTHER_FOLDERS = (
    "rules",
    "rules-configs",
    "database-connections",
    "connections",
    "roles",
    "organizations",
    "pages",
    "emails",
    "guardian",
    "log-streams",
    "custom-domains",
    "action-modules",
    "flows",
    "forms",
    "prompts",
    "themes",
)
HANDLED_YAML_KEYS = {*YAML_KEYS.values(), "triggers", "tenant", "exclude", "include"}
YAML_SUFFIXES = (".yaml", ".yml")


def replace_keywords(body: str, keywords: dict[str, Any]) -> str:
    """The Deploy CLI's ``keywordReplace``: arrays (``@@KEY@@``, quoted or
    not) become the value's JSON, then ``##KEY##`` the value's text."""
    for key, value in keywords.items():
        pattern = re.escape(f"@@{key}@@")
        body = re.sub(f"'{pattern}'|\"{pattern}\"|{pattern}", _fixed(json.dumps(value)), body)
    for key, value in keywords.items():
        shown = value if isinstance(value, str) else json.dumps(value)
        body = body.replace(f"##{key}##", shown)
    return body


def _fixed(replacement: str) -> Callable[[re.Match[str]], str]:
    # A function, so that backslashes in the value are not read as escapes.
    return lambda _match: replacement


class Reader:
    """Files under one root, read with the keywords replaced."""

    def __init__(self, root: Path, keywords: dict[str, Any]) -> None:
        self.root = root.resolve()
        self.keywords = keywords

    def name(self, path: Path) -> str:
        return str(path.relative_to(self.root)) if path.is_relative_to(self.root) else str(path)

    def read(self, path: Path) -> str:
        try:
            body = replace_keywords(path.read_text(encoding="utf-8"), self.keywords)
        except (OSError, UnicodeDecodeError) as error:
            raise ImportRefused(
                f"Malformed export: cannot read {self.name(path)}: {error}"
            ) from None
        if not is_text(body):
            raise ImportRefused(f"Malformed export: {self.name(path)} holds a NUL character.")
        return body

    def json(self, path: Path) -> dict[str, Any]:
        try:
            body = json.loads(self.read(path))
        except ValueError as error:
            raise ImportRefused(f"Malformed export: {self.name(path)}: {error}") from None
        if not isinstance(body, dict):
            raise ImportRefused(f"Malformed export: {self.name(path)} is not a JSON object.")
        return body

    def script(self, base: Path, relative: Any, where: str) -> str:
        """A script file named relative to ``base``, which must stay under
        the root (a path out of the export is refused)."""
        path = (base / text(relative, f"{where}: script path").replace("\\", "/")).resolve()
        if not path.is_relative_to(self.root):
            raise ImportRefused(f"Malformed export: {where} names a file outside the export.")
        if not path.is_file():
            raise ImportRefused(f"Malformed export: {where} names {self.name(path)}, not a file.")
        return self.read(path)


def read_deploy_cli(
    path: str | Path, *, keywords: dict[str, Any] | None = None, only: tuple[str, ...] = KINDS
) -> Export:
    """What the export at ``path`` (a directory, or a YAML file) holds of
    ``only``, with what cannot come over listed."""
    location = Path(path)
    if location.is_file():
        if location.suffix.lower() not in YAML_SUFFIXES and location.suffix.lower() != ".json":
            raise ImportRefused(f"{path} is neither a Deploy CLI directory nor a YAML file.")
        return _read_yaml(location, keywords or {}, only)
    if not location.is_dir():
        raise ImportRefused(f"No such directory or file: {path}")
    known = [*FOLDERS.values(), "triggers"]
    if not any((location / folder).is_dir() for folder in known):
        for name in ("tenant.yaml", "tenant.yml"):
            if (location / name).is_file():
                return _read_yaml(location / name, keywords or {}, only)
        raise ImportRefused(
            f"Malformed export: {path} has none of the Deploy CLI's folders "
            f"({', '.join(known)}) and no tenant.yaml."
        )
    return _read_directory(location, keywords or {}, only)


def _files(folder: Path) -> list[Path]:
    if folder.exists() and not folder.is_dir():
        raise ImportRefused(f"Malformed export: {folder.name} must be a folder.")
    return sorted(p for p in folder.glob("*.json") if p.is_file()) if folder.is_dir() else []


def _read_directory(root: Path, keywords: dict[str, Any], only: tuple[str, ...]) -> Export:
    reader = Reader(root, keywords)
    export = Export(source=str(root))
    items: dict[str, list[tuple[str, dict[str, Any]]]] = {
        kind: [(reader.name(f), reader.json(f)) for f in _files(root / folder)]
        for kind, folder in FOLDERS.items()
        if kind in only
    }
    hooks_folder = reader.root / "hooks"
    scripts: dict[str, Callable[[Any, str], str]] = {
        "hooks": lambda relative, where: reader.script(hooks_folder, relative, where),
        "actions": lambda relative, where: reader.script(reader.root, relative, where),
    }
    _fill(export, items, scripts, only)
    if "actions" in only:
        triggers = _files(root / "triggers")
        if triggers:
            _bindings(export, reader.json(triggers[0]), reader.name(triggers[0]))
    for folder in OTHER_FOLDERS:
        if (root / folder).is_dir():
            count = sum(1 for p in (root / folder).rglob("*") if p.suffix == ".json")
            export.left_out.append(f"{folder}/ ({count} files)")
    return export


def _read_yaml(path: Path, keywords: dict[str, Any], only: tuple[str, ...]) -> Export:
    reader = Reader(path.parent, keywords)
    try:
        body = yaml.safe_load(reader.read(path.resolve()))
    except yaml.YAMLError as error:
        line = " ".join(str(error).split())
        raise ImportRefused(f"Malformed export: {path.name}: {line}") from None
    body = mapping(body, f"Malformed export: {path.name}")
    export = Export(source=str(path))
    items = {}
    for kind, key in YAML_KEYS.items():
        if kind in only:
            entries = listing(body.get(key), f"Malformed export: {path.name}: {key}")
            items[kind] = [
                (f"{path.name}: {key}[{i}]", mapping(e, f"{path.name}: {key}[{i}]"))
                for i, e in enumerate(entries)
            ]
    scripts: dict[str, Callable[[Any, str], str]] = {
        "hooks": lambda relative, where: reader.script(reader.root, relative, where),
        "actions": lambda relative, where: reader.script(reader.root, relative, where),
    }
    _fill(export, items, scripts, only)
    if "actions" in only and body.get("triggers") is not None:
        _bindings(export, mapping(body["triggers"], f"{path.name}: triggers"), path.name)
    for key, value in body.items():
        if key not in HANDLED_YAML_KEYS and value:
            count = len(value) if isinstance(value, list | dict) else 1
            export.left_out.append(f"{key} ({count})")
    return export


def _fill(
    export: Export,
    items: dict[str, list[tuple[str, dict[str, Any]]]],
    scripts: dict[str, Callable[[Any, str], str]],
    only: tuple[str, ...],
) -> None:
    for where, body in items.get("resource_servers", []):
        if body.get("is_system") or body.get("name") == "Auth0 Management API":
            export.system_audiences.add(str(body.get("identifier")))
            continue
        export.resource_servers.append(api_spec(body, where))
    for where, body in items.get("clients", []):
        if is_m2m(body):
            export.clients.append(client_spec(body, where))
        elif not body.get("global"):
            export.left_out.append(f"client {body.get('name')} ({body.get('app_type')})")
    for where, body in items.get("client_grants", []):
        export.client_grants.append(grant_spec(body, where))
    for where, body in items.get("hooks", []):
        if body.get("triggerId") != CREDENTIALS_EXCHANGE:
            export.left_out.append(f"hook {body.get('name')} ({body.get('triggerId')})")
            continue
        name = text(body.get("name"), f"{where}: name")
        secrets = mapping(body.get("secrets"), f"{where}: secrets")
        export.hooks.append(
            HookSpec(
                # The CLI's own rule for a hook's name.
                name=re.sub(r"\s", "-", name.lower()),
                script=scripts["hooks"](body.get("script"), f"hook {name}"),
                enabled=bool(body.get("enabled")),
                dependencies=hook_dependencies(body.get("dependencies"), where),
                secrets={
                    str(k): v if isinstance(v, str) and v != VALUE_NOT_SHOWN else None
                    for k, v in secrets.items()
                },
            )
        )
    for where, body in items.get("actions", []):
        name = text(body.get("name"), f"{where}: name")
        trigger = action_trigger(body, where)
        if trigger != CREDENTIALS_EXCHANGE:
            export.left_out.append(f"action {name} ({trigger or 'no trigger'})")
            continue
        export.actions.append(
            ActionSpec(
                name=name,
                code=scripts["actions"](body.get("code"), f"action {name}"),
                runtime=text(body.get("runtime"), f"{where}: runtime", required=False) or "node22",
                dependencies=action_dependencies(body.get("dependencies"), where),
                secrets=action_secrets(body.get("secrets"), where),
                deployed=bool(body.get("deployed")),
            )
        )


def _bindings(export: Export, triggers: dict[str, Any], where: str) -> None:
    for trigger, entries in triggers.items():
        entries = listing(entries, f"Malformed export: {where}: {trigger}")
        if trigger != CREDENTIALS_EXCHANGE:
            if entries:
                export.left_out.append(f"trigger {trigger} ({len(entries)} bound actions)")
            continue
        export.bindings = []
        for index, entry in enumerate(entries):
            entry = mapping(entry, f"Malformed export: {where}: {trigger}[{index}]")
            name = text(entry.get("action_name"), f"{where}: {trigger}[{index}].action_name")
            export.bindings.append(BindingEntry(name, str(entry.get("display_name") or name)))
