"""The layout is a map (docs/DEVELOPING.md): a token request flows clients →
hooks → tenant and never back; the tenancy base (``tenant/`` less
``tenant/site/``) imports no app; the site above them all is imported by
nothing; the hook runtime imports nothing of the project; and no modules
import each other in a loop, on one floor either."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SITE = "tenant.site"
# floor -> what it must never import. A floor is a folder; its subfolders
# that are floors of their own are left to their own row.
FORBIDDEN = {
    "tenant": {"apis", "clients", "hooks", SITE},
    "apis": {"clients", "hooks", SITE},
    "hooks": {"apis", "clients", SITE},
    "clients": {SITE},
    "hooks/runtime": {"apis", "clients", "hooks", "tenant", "django", "rest_framework"},
}
OWN_FLOORS = {"tenant": ["tenant/site"], "hooks": ["hooks/runtime"]}


def imported_modules(path: Path) -> set[str]:
    """Every absolute module an import statement names, with its parents
    (``tenant.site.urls`` gives ``tenant``, ``tenant.site`` and itself)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {".".join(m.split(".")[:i]) for m in modules for i in range(1, m.count(".") + 2)}


def floor_files(floor: str) -> list[Path]:
    skip = [ROOT / own for own in OWN_FLOORS.get(floor, [])]
    return [
        path
        for path in (ROOT / floor).rglob("*.py")
        if "migrations" not in path.parts and not any(path.is_relative_to(s) for s in skip)
    ]


@pytest.mark.parametrize("floor", sorted(FORBIDDEN))
def test_no_import_runs_up_a_floor(floor):
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_modules(path) & FORBIDDEN[floor])
        for path in floor_files(floor)
    }

    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_floor_check_sees_a_wrong_way_import(tmp_path):
    wrong = tmp_path / "wrong.py"
    wrong.write_text("from clients.models import Client\nimport tenant.site.urls\n")

    assert {"clients", "tenant.site"} <= imported_modules(wrong)


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def project_imports(path: Path) -> set[str]:
    """The project modules ``path`` imports, relative imports resolved,
    wherever the import stands (a function's own too)."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = imported_modules(path)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
            target = f"{base}.{node.module}" if node.module else base
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return names


def import_loops() -> list[list[str]]:
    """Groups of project modules that reach each other through imports."""
    files = [
        path for floor in ("tenant", "clients", "hooks", "apis") for path in floor_files(floor)
    ]
    modules = {module_name(path): path for path in files}
    graph = {
        name: project_imports(path) & modules.keys() - {name} for name, path in modules.items()
    }
    loops: list[list[str]] = []
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(name: str) -> None:  # Tarjan's strongly connected components
        index[name] = low[name] = len(index)
        stack.append(name)
        on_stack.add(name)
        for other in graph[name]:
            if other not in index:
                visit(other)
                low[name] = min(low[name], low[other])
            elif other in on_stack:
                low[name] = min(low[name], index[other])
        if low[name] == index[name]:
            group: list[str] = []
            while not group or group[-1] != name:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1:
                loops.append(sorted(group))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return loops


def test_no_modules_import_each_other():
    """A lazy import inside a function is a loop too: it hides it from the
    interpreter, not from the reader."""
    assert import_loops() == []


def test_the_runtime_loads_by_path_without_the_project():
    """The process-isolation worker loads the runtime package by path, with
    no project on ``sys.path``: it must import nothing of Django or the apps."""
    code = (
        "import importlib.util, os, sys\n"
        "here = sys.argv[1]\n"
        "spec = importlib.util.spec_from_file_location('hooks_runtime', os.path.join(here, "
        "'__init__.py'), submodule_search_locations=[here])\n"
        "module = importlib.util.module_from_spec(spec); sys.modules['hooks_runtime'] = module\n"
        "spec.loader.exec_module(module)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('django', 'tenant', 'hooks', 'clients', 'apis'))\n"
        "print(','.join(bad) or 'clean')\n"
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-I", "-c", code, str(ROOT / "hooks" / "runtime")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "clean"


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
