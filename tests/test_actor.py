"""Every write names its actor: each public service takes ``actor`` as a
required keyword, so a caller that forgets it fails at once instead of
writing an audit row that blames nobody."""

import importlib
import inspect
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICE_MODULES = sorted(
    ".".join(path.relative_to(ROOT).with_suffix("").parts) for path in ROOT.glob("*/services.py")
)

# Public functions of services modules that write nothing a person asked for:
# what an audit row records of an object, a name, and a hook's own data
# written while it runs on the token path (not configuration, not audited).
NOT_SERVICES = {
    "tenant.services": {"tenant_state"},
    "apis.services": {"api_state", "management_api_identifier"},
    "clients.services": {"client_state", "grant_state"},
    "hooks.services": {"hook_state", "hook_storage_save", "action_cache_apply"},
}


def public_functions(module_name: str) -> dict[str, object]:
    module = importlib.import_module(module_name)
    return {
        name: value
        for name, value in vars(module).items()
        if inspect.isfunction(value)
        and value.__module__ == module_name
        and not name.startswith("_")
    }


def test_every_app_has_a_services_module():
    assert sorted(NOT_SERVICES) == SERVICE_MODULES


@pytest.mark.parametrize("module_name", SERVICE_MODULES)
def test_every_public_service_requires_a_keyword_only_actor(module_name: str):
    functions = public_functions(module_name)
    assert NOT_SERVICES[module_name] <= set(functions), "the exemption list names a ghost"
    services = {n: f for n, f in functions.items() if n not in NOT_SERVICES[module_name]}
    assert services
    wrong = []
    for name, function in services.items():
        actor = inspect.signature(function).parameters.get("actor")  # type: ignore[arg-type]
        if (
            actor is None
            or actor.kind is not inspect.Parameter.KEYWORD_ONLY
            or actor.default is not inspect.Parameter.empty
        ):
            wrong.append(name)
    assert wrong == []
