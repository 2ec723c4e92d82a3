"""What going live with an Action is judged on: a tenant whose two clients,
``orders`` and ``billing`` (each with a JSON profile in its metadata), have
called over real HTTP through a bound Action, so that their requests are
recorded. Set ``PUBLIC_URL`` to a live server's URL first."""

import json

import jwt
import requests

from hooks.action_services import BindingSpec, action_create, action_deploy, bindings_replace
from hooks.models import Action
from tests.factories import TEST_ACTOR, make_api, make_client, make_tenant

TRIGGER = "credentials-exchange"
CLAIM = "https://example.com/a"
PLAN = "https://example.com/plan"


def tag_code(value: int) -> str:
    """Sets ``CLAIM`` to ``value`` for every client."""
    return (
        "exports.onExecuteCredentialsExchange = async (event, api) => {\n"
        f"  api.accessToken.setCustomClaim('{CLAIM}', {value});\n"
        "};\n"
    )


# Throws for the billing client only, at line 2.
BREAKS_BILLING = (
    "exports.onExecuteCredentialsExchange = async (event, api) => {\n"
    "  if (event.client.name === 'billing') throw new Error('no billing');\n"
    f"  api.accessToken.setCustomClaim('{CLAIM}', 2);\n"
    "};\n"
)
# Needs an earlier Action's claim for billing: unbinding that Action breaks it.
NEEDS_THE_TAG = (
    "exports.onExecuteCredentialsExchange = async (event, api) => {\n"
    f"  if (event.client.name === 'billing' && !event.accessToken.customClaims['{CLAIM}'])\n"
    "    throw new Error('billing needs the tag');\n"
    "};\n"
)
# Fails on the sample event (no profile there) and serves every real client.
FROM_PROFILE = (
    "exports.onExecuteCredentialsExchange = async (event, api) => {\n"
    "  const profile = JSON.parse(String(event.client.metadata.profile));\n"
    f"  api.accessToken.setCustomClaim('{PLAN}', profile.plan);\n"
    "};\n"
)


class Calling:
    """The tenant ``slug``: an API, the clients ``orders`` and ``billing``,
    the Action ``tag`` (``tag_code(1)``) deployed and bound, and one token
    request of each client through the live server."""

    def __init__(self, slug: str) -> None:
        self.tenant = make_tenant(slug, name=slug.capitalize())
        self.audience = f"https://api.{slug}.test/"
        api = make_api(self.tenant, self.audience, scopes=["read:data"])
        self.clients = {
            name: make_client(
                self.tenant,
                {api: ["read:data"]},
                name=name,
                metadata={"profile": json.dumps({"plan": plan})},
            )
            for name, plan in (("orders", "gold"), ("billing", "free"))
        }
        self.action = self.deployed("tag", tag_code(1))
        bindings_replace(
            tenant=self.tenant,
            trigger_id=TRIGGER,
            bindings=[BindingSpec(self.action, "tag")],
            actor=TEST_ACTOR,
        )
        for name in self.clients:
            self.claims(name)

    def client_id(self, name: str) -> str:
        return str(self.clients[name][0].client_id)

    def deployed(self, name: str, code: str) -> Action:
        """A new Action of this tenant, deployed, not bound."""
        action = action_create(tenant=self.tenant, name=name, code=code, actor=TEST_ACTOR)
        action_deploy(action=action, actor=TEST_ACTOR)
        return action

    def token(self, name: str) -> requests.Response:
        client, secret = self.clients[name]
        return requests.post(
            f"{self.tenant.issuer}oauth/token",
            json={
                "grant_type": "client_credentials",
                "client_id": client.client_id,
                "client_secret": secret,
                "audience": self.audience,
            },
            timeout=30,
        )

    def claims(self, name: str) -> dict:
        response = self.token(name)
        assert response.status_code == 200, response.text
        return jwt.decode(response.json()["access_token"], options={"verify_signature": False})
