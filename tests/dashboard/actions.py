"""Actions for the dashboard's tests: code that sets one claim, and
deployed, bound Actions made through the services."""

import json

from hooks.action_services import BindingSpec, action_create, action_deploy, bindings_replace
from hooks.models import Action
from tenant.models import Tenant
from tests.factories import TEST_ACTOR

TRIGGER = "credentials-exchange"


def claim_code(name: str, value: str) -> str:
    """An Action that sets https://example.com/<name> and https://example.com/last."""
    return f"""exports.onExecuteCredentialsExchange = async (event, api) => {{
  api.accessToken.setCustomClaim('https://example.com/{name}', {json.dumps(value)});
  api.accessToken.setCustomClaim('https://example.com/last', {json.dumps(value)});
}};
"""


def make_action(tenant: Tenant, name: str, *, deploy: bool = True, code: str = "") -> Action:
    action = action_create(
        tenant=tenant, name=name, code=code or claim_code(name, name), actor=TEST_ACTOR
    )
    if deploy:
        action_deploy(action=action, actor=TEST_ACTOR)
    return action


def bind(tenant: Tenant, *actions: Action) -> None:
    bindings_replace(
        tenant=tenant,
        trigger_id=TRIGGER,
        bindings=[BindingSpec(action, action.name) for action in actions],
        actor=TEST_ACTOR,
    )


def bound_names(tenant: Tenant) -> list[str]:
    return [
        b.action.name
        for b in tenant.trigger_bindings.filter(trigger_id=TRIGGER)
        .select_related("action")
        .order_by("position")
    ]
