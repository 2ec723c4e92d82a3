"""filter_token_claims: what of a hook's result reaches the token (SPEC §4)."""

import pytest

from hooks.points import HookResultInvalid, filter_token_claims

RESERVED = ["auth0.com", "webtask.io", "webtask.run", "tessera.example"]


def test_scope_array_replaces_granted_scopes():
    result = filter_token_claims({"scope": ["a", "b", "a"]}, reserved_domains=RESERVED)
    assert result.scope == ["a", "b"]


def test_scope_string_is_split_on_spaces():
    assert filter_token_claims({"scope": "a b"}, reserved_domains=RESERVED).scope == ["a", "b"]


def test_absent_scope_means_no_scope():
    assert filter_token_claims({}, reserved_domains=RESERVED).scope == []


def test_invalid_scope_is_dropped_with_reason():
    result = filter_token_claims({"scope": [1, "a"]}, reserved_domains=RESERVED)
    assert result.scope == []
    assert result.dropped[0].name == "scope"


def test_namespaced_claims_kept_with_any_json_value():
    value = {"https://foo.com/claim": "bar", "http://x.test/n": {"deep": [1, None]}}
    assert filter_token_claims(value, reserved_domains=RESERVED).claims == value


@pytest.mark.parametrize(
    "name",
    [
        "https://auth0.com/x",
        "https://sub.webtask.io/x",
        "http://webtask.run/",
        "https://tessera.example/c",
    ],
)
def test_reserved_namespace_hosts_are_dropped(name):
    result = filter_token_claims({name: 1}, reserved_domains=RESERVED)
    assert result.claims == {}
    assert "reserved" in result.dropped[0].reason


@pytest.mark.parametrize("name", ["iss", "sub", "aud", "exp", "iat", "azp", "gty", "jti"])
def test_standard_claims_cannot_be_overridden(name):
    result = filter_token_claims({name: "evil"}, reserved_domains=RESERVED)
    assert result.claims == {}
    assert result.dropped[0].reason == "reserved claim, set by Tessera"


@pytest.mark.parametrize("name", ["claim", "urn:x:y", "ftp://foo.com/x", "https://"])
def test_non_namespaced_properties_are_dropped_with_reason(name):
    result = filter_token_claims({name: 1}, reserved_domains=RESERVED)
    assert result.claims == {}
    assert "namespaced" in result.dropped[0].reason


def test_lookalike_host_is_not_reserved():
    result = filter_token_claims({"https://notauth0.com/x": 1}, reserved_domains=RESERVED)
    assert result.claims == {"https://notauth0.com/x": 1}


def test_none_result_means_empty_token_extras():
    result = filter_token_claims(None, reserved_domains=RESERVED)
    assert (result.scope, result.claims) == ([], {})


@pytest.mark.parametrize("value", ["str", 3, ["a"], True])
def test_non_object_result_is_invalid(value):
    with pytest.raises(HookResultInvalid):
        filter_token_claims(value, reserved_domains=RESERVED)
