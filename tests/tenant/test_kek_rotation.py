"""Rotating ``TESSERA_KEK``: with the new key first and the old one after it,
a restarted server still reads what the old key encrypted (signing keys,
HS256 API secrets, hook secrets) and encrypts what it writes with the new one."""

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import jwt
import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.test import Client as HttpClient

from apis.choices import SigningAlgorithm
from apis.models import Api
from hooks.execution import close_hook_runtime
from hooks.models import HookSecret
from hooks.services import hook_create, hook_secrets_set
from tenant import config_cache, crypto
from tenant.models import SigningKey
from tests.factories import TEST_ACTOR, make_api, make_client, make_tenant

pytestmark = pytest.mark.django_db

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()
RS_AUD, HS_AUD = "https://rs.example.test/", "https://hs.example.test/"
SCRIPT = """module.exports = function(client, scope, audience, context, cb) {
  cb(null, { scope: scope, 'https://example.com/key': context.webtask.secrets.API_KEY });
};"""


def use_kek(settings, value: str) -> None:
    """The server restarted with ``TESSERA_KEK=value``: nothing it decrypted is held."""
    settings.TESSERA_KEK = value
    crypto._fernet.cache_clear()
    config_cache.forget()
    close_hook_runtime()


@pytest.fixture(autouse=True)
def _forget_the_kek() -> Iterator[None]:
    crypto._fernet.cache_clear()
    yield
    crypto._fernet.cache_clear()


def token(tenant, client, secret, audience):  # type: ignore[no-untyped-def]
    body = {
        "grant_type": "client_credentials",
        "client_id": client.client_id,
        "client_secret": secret,
        "audience": audience,
    }
    return HttpClient().post(
        f"/{tenant.slug}/oauth/token", json.dumps(body), content_type="application/json"
    )


def test_values_encrypted_with_the_old_kek_still_work_after_rotation(settings):
    use_kek(settings, OLD)
    acme = make_tenant("acme")
    rs = make_api(acme, RS_AUD)
    hs = make_api(acme, HS_AUD, signing_alg=SigningAlgorithm.HS256)
    client, secret = make_client(acme, {rs: ["read:data"], hs: ["read:data"]})
    hook = hook_create(tenant=acme, name="key", script=SCRIPT, enabled=True, actor=TEST_ACTOR)
    hook_secrets_set(hook=hook, secrets={"API_KEY": "old-secret"}, actor=TEST_ACTOR)
    hs_secret = crypto.decrypt(Api.objects.get(pk=hs.pk).signing_secret_encrypted)
    old_rows = {
        "signing key": SigningKey.objects.get(tenant=acme).private_key_encrypted,
        "hook secret": HookSecret.objects.get(hook=hook).value_encrypted,
    }

    use_kek(settings, f"{NEW},{OLD}")

    # RS256: the private key encrypted under the old KEK still signs.
    response = token(acme, client, secret, RS_AUD)
    assert response.status_code == 200, response.content
    jwks = jwt.PyJWKSet.from_dict(HttpClient().get("/acme/.well-known/jwks.json").json())
    claims = jwt.decode(
        response.json()["access_token"], jwks.keys[0], algorithms=["RS256"], audience=RS_AUD
    )
    assert claims["https://example.com/key"] == "old-secret"  # the hook secret decrypts
    # HS256: the API secret encrypted under the old KEK still signs.
    response = token(acme, client, secret, HS_AUD)
    assert response.status_code == 200, response.content
    jwt.decode(response.json()["access_token"], hs_secret, algorithms=["HS256"], audience=HS_AUD)

    # What is written now is encrypted with the new key, which alone reads it.
    hook_secrets_set(hook=hook, secrets={"API_KEY": "new-secret"}, actor=TEST_ACTOR)
    new_value = HookSecret.objects.get(hook=hook, name="API_KEY").value_encrypted
    assert Fernet(NEW.encode()).decrypt(new_value.encode()) == b"new-secret"
    with pytest.raises(InvalidToken):
        Fernet(OLD.encode()).decrypt(new_value.encode())
    close_hook_runtime()
    claims = jwt.decode(
        token(acme, client, secret, RS_AUD).json()["access_token"],
        jwks.keys[0],
        algorithms=["RS256"],
        audience=RS_AUD,
    )
    assert claims["https://example.com/key"] == "new-secret"

    # Without the old key, what it encrypted cannot be read: a KEK that
    # decrypts none of the stored signing keys is refused outright.
    use_kek(settings, NEW)
    for value in old_rows.values():
        with pytest.raises(crypto.KekError):
            crypto.decrypt(value)


def test_workers_starting_together_all_read_the_one_generated_key(tmp_path):
    """A fresh checkout's server: its workers generate ``var/kek`` at once;
    none may read it half written (it refused to start with an empty key)."""
    path = tmp_path / "var" / "kek"
    start = threading.Barrier(16)

    def generate(_: int) -> str:
        start.wait()
        return crypto._generated_key(path)

    with ThreadPoolExecutor(16) as pool:
        keys = set(pool.map(generate, range(16)))

    assert keys == {path.read_text()}
    Fernet(path.read_text())  # a whole key
    assert sorted(p.name for p in path.parent.iterdir()) == ["kek"]  # nothing left aside
