"""Property-based fuzzing of the token endpoint (and, once listed in SURFACES,
of other JSON surfaces): arbitrary bodies, content types, headers, Basic
credentials and paths under the issuer always answer JSON with ``error``,
never a 5xx and never a stack trace.

Deterministic by default (tests/conftest.py's "ci" Hypothesis profile:
derandomized, 200 examples); ``HYPOTHESIS_PROFILE=explore`` searches at random.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.factories import make_api, make_client, make_tenant
from tests.fuzzing import (
    CONTENT_TYPES,
    METHODS,
    FuzzRequest,
    assert_json_contract,
    basic_header,
    bodies,
    extra_headers,
    header_text,
    hostile_text,
    long_text,
)

pytestmark = pytest.mark.django_db

AUD = "https://api.example.test/"


@dataclass(frozen=True)
class World:
    slug: str
    client_id: str
    secret: str


@pytest.fixture
def world() -> World:
    tenant = make_tenant("acme")
    api = make_api(tenant, AUD)
    client, secret = make_client(tenant, {api: ["read:data"]})
    other = make_tenant("globex")
    make_client(other, {make_api(other, AUD): ["read:data"]})
    return World(slug=tenant.slug, client_id=client.client_id, secret=secret)


def token_paths(world: World) -> st.SearchStrategy[str]:
    issuer = f"/{world.slug}"
    return st.one_of(
        st.just(f"{issuer}/oauth/token"),
        st.sampled_from(
            [
                f"{issuer}/oauth/token/",
                f"{issuer}/oauth//token",
                f"{issuer}/oauth/token%00",
                f"{issuer}/../oauth/token",
                "/globex/oauth/token",
                "/nobody/oauth/token",
                "/%ff/oauth/token",
                f"{issuer}/.well-known/jwks.json",
                f"{issuer}/.well-known/openid-configuration",
            ]
        ),
        # Any tail, as a client puts it on the wire: percent-encoded UTF-8
        # (surrogates and NUL included), so "?" and "#" stay in the path.
        hostile_text.map(lambda tail: f"{issuer}/{quote(tail, safe='/', errors='surrogatepass')}"),
    )


def token_params(world: World) -> st.SearchStrategy[dict[str, object]]:
    """Parameters of a token request: real values, hostile ones, wrong types."""

    def value(real: str) -> st.SearchStrategy[object]:
        return st.one_of(st.just(real), hostile_text, long_text, st.integers(), st.none())

    return st.fixed_dictionaries(
        {},
        optional={
            "grant_type": value("client_credentials"),
            "client_id": value(world.client_id),
            "client_secret": value(world.secret),
            "audience": value(AUD),
            "scope": value("read:data"),
            "extra": value(""),
        },
    )


def token_endpoint_requests(world: World, *, basic: bool = False) -> st.SearchStrategy[FuzzRequest]:
    """Requests to the token endpoint and paths near it; with ``basic``, each
    carries ``Authorization: Basic`` credentials, real or hostile, beside a
    body that passes the other checks (so that the credentials are read)."""
    if not basic:
        return st.builds(
            FuzzRequest,
            method=st.sampled_from(["POST"] * 6 + METHODS),
            path=token_paths(world),
            body=bodies(token_params(world)),
            content_type=st.one_of(st.sampled_from(CONTENT_TYPES), header_text),
            meta=extra_headers(),
        )
    user = st.one_of(st.just(world.client_id), hostile_text, long_text)
    password = st.one_of(st.just(world.secret), hostile_text)
    body = {"grant_type": "client_credentials", "audience": AUD}
    return st.builds(
        FuzzRequest,
        method=st.just("POST"),
        path=st.just(f"/{world.slug}/oauth/token"),
        body=st.just(json.dumps(body).encode()),
        meta=st.builds(lambda auth: {"HTTP_AUTHORIZATION": auth}, basic_header(user, password)),
    )


# One entry per fuzzed surface: a function from the world to its requests.
SURFACES: dict[str, Callable[[World], st.SearchStrategy[FuzzRequest]]] = {
    "token endpoint": token_endpoint_requests,
}


@pytest.mark.parametrize("surface", SURFACES)
@given(data=st.data())
def test_every_answer_is_json_with_error_and_never_a_5xx(world, surface, data):
    request = data.draw(SURFACES[surface](world), label="request")
    assert_json_contract(request, request.send())


# Basic credentials are decoded in clients/tokens.py; kept apart so that a
# failure there is told from one in the body's handling.
@given(data=st.data())
def test_every_answer_to_basic_credentials_is_json_and_never_a_5xx(world, data):
    request = data.draw(token_endpoint_requests(world, basic=True), label="request")
    assert_json_contract(request, request.send())
