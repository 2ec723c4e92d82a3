"""Management API views read through each app's selectors and write through
its services: no view module queries a model's manager itself."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VIEW_MODULES = [
    "apis/api.py",
    "clients/api.py",
    "hooks/api.py",
    "hooks/actions_api.py",
    "tenant/management_api.py",
]


@pytest.mark.parametrize("path", VIEW_MODULES)
def test_views_do_not_query_managers(path: str):
    tree = ast.parse((ROOT / path).read_text())
    queries = [
        f"{path}:{node.lineno}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr in ("objects", "_default_manager")
    ]
    assert queries == []
