"""The layout is a map: a token request flows clients → hooks → tenant and
never back (docs/DEVELOPING.md)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# app -> apps it must never import (tenant/ is also the Django project, whose
# URLs, admin site and demo command put every app together).
FORBIDDEN = {"hooks": {"clients", "apis"}}


def imported_apps(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("app", sorted(FORBIDDEN))
def test_app_never_imports_what_comes_before_it_in_the_token_flow(app):
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_apps(path) & FORBIDDEN[app])
        for path in (ROOT / app).rglob("*.py")
        if "migrations" not in path.parts
    }

    assert {path: apps for path, apps in offenders.items() if apps} == {}


def test_commands_share_helpers_never_each_other():
    commands = [p for p in ROOT.glob("*/management/commands/*.py") if p.name != "__init__.py"]
    importing_commands = {
        str(path.relative_to(ROOT))
        for path in commands
        if any(
            ".management.commands" in line
            for line in path.read_text().splitlines()
            if line.startswith(("from ", "import "))
        )
    }

    assert commands and importing_commands == set()
