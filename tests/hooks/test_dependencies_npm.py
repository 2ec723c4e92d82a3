"""npm dependencies of hooks and Actions: resolved when a hook is saved or an
Action built (never while a token is issued), pinned per version, loaded by
``require`` in the sandbox, in both isolation modes.

Real packages come from the public registry, at pinned versions (lodash,
jsonwebtoken, axios, the auth0 SDK); they are unpacked into the shared store
(``TESSERA_NPM_STORE``), so a run downloads each at most once. The hostile
cases come from a local registry the test fills (tests/hooks/npm_registry.py).
"""

import contextlib
import json
import shutil
import socket
import ssl
import threading
from collections.abc import Iterator
from io import StringIO
from typing import Any

import jwt
import pytest
import requests
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import Client as HttpClient
from django.urls import reverse

from clients.services import client_create, management_client_create
from hooks.action_services import (
    BindingSpec,
    SecretSpec,
    action_create,
    action_deploy,
    action_update,
    bindings_replace,
)
from hooks.choices import ActionStatus
from hooks.dependencies import DependencyRefused
from hooks.forms import HookScriptForm
from hooks.models import Action
from hooks.runtime import npm
from hooks.services import HookSampleRunFailed, hook_create, hook_update
from tenant import config_cache
from tenant.audit import Actor
from tests.dashboard.conftest import make_world
from tests.factories import TEST_ACTOR, make_api, make_client, make_tenant
from tests.hooks.conftest import tls_context
from tests.hooks.network import LOOPBACK, World, action
from tests.hooks.npm_registry import Registry, serve_registry, tarball
from tests.management.conftest import ManagedTenant, live, managed_tenant  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db

LODASH = "4.17.21"
JSONWEBTOKEN = "9.0.2"
AXIOS = "1.7.9"
AUTH0 = "4.12.0"
# Loading a large package's modules takes wall-clock time on a busy machine.
SLOW_MS = 15_000


@pytest.fixture
def registry(settings) -> Iterator[Registry]:
    for served in serve_registry():
        settings.TESSERA_NPM_REGISTRY = served.url
        yield served


def flow(slug: str, code: str, dependencies: list[dict[str, str]], timeout_ms: int = 5000):
    """A tenant whose credentials-exchange flow is one deployed Action."""
    tenant = make_tenant(slug)
    tenant.hook_timeout_ms = tenant.hook_cpu_ms = timeout_ms
    tenant.save()
    audience = f"https://api.{slug}.test/"
    api = make_api(tenant, audience, scopes=["read"])
    client, secret = make_client(tenant, {api: ["read"]})
    created = action_create(
        tenant=tenant, name="act", code=code, dependencies=dependencies, actor=TEST_ACTOR
    )
    assert created.status == ActionStatus.BUILT, created.build_errors
    action_deploy(action=created, actor=TEST_ACTOR)
    bindings_replace(
        tenant=tenant,
        trigger_id="credentials-exchange",
        bindings=[BindingSpec(created, "act")],
        actor=TEST_ACTOR,
    )
    return tenant, created, (client, secret, audience)


def claims_for(tenant, credentials) -> dict:
    client, secret, audience = credentials
    body = {
        "grant_type": "client_credentials",
        "client_id": client.client_id,
        "client_secret": secret,
        "audience": audience,
    }
    response = HttpClient().post(
        f"/{tenant.slug}/oauth/token", json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 200, response.content
    return jwt.decode(response.json()["access_token"], options={"verify_signature": False})


def built(tenant, code: str, dependencies: list[dict[str, str]]) -> Action:
    return action_create(
        tenant=tenant, name="a", code=code, dependencies=dependencies, actor=TEST_ACTOR
    )


def failure(action_row: Action) -> str:
    assert action_row.status == ActionStatus.FAILED
    assert not action_row.dependency_lock or action_row.build_errors
    return " ".join(error["msg"] for error in action_row.build_errors)


# ---- real packages from the registry ------------------------------------------------

JWT_HOOK = """const jwt = require('jsonwebtoken');
const _ = require('lodash');

module.exports = function (client, scope, audience, context, cb) {
  const token = jwt.sign({ sub: client.id, tier: 'gold' }, 'a-long-shared-hmac-secret-0123456789',
    { algorithm: 'HS256', noTimestamp: true });
  const verified = jwt.verify(token, 'a-long-shared-hmac-secret-0123456789', { algorithms: ['HS256'] });
  let refused = '';
  try { jwt.verify(token, 'another-secret'); } catch (e) { refused = e.name + ': ' + e.message; }
  cb(null, {
    'https://x.test/jwt': token,
    'https://x.test/verified': verified,
    'https://x.test/refused': refused,
    'https://x.test/lodash': _.chunk(_.map([1, 2, 3], (n) => n * 2), 2),
  });
};"""


def test_jsonwebtoken_signs_and_verifies_hs256_and_lodash_runs_in_a_hook(isolation):
    world = World(
        "jwt",
        JWT_HOOK,
        timeout_ms=SLOW_MS,
        dependencies={"lodash": LODASH, "jsonwebtoken": JSONWEBTOKEN},
    )

    token = world.claims()

    expected = jwt.encode(
        {"sub": world.client.client_id, "tier": "gold"},
        "a-long-shared-hmac-secret-0123456789",
        algorithm="HS256",
    )
    assert token["https://x.test/jwt"] == expected  # byte for byte what PyJWT signs
    assert token["https://x.test/verified"] == {"sub": world.client.client_id, "tier": "gold"}
    assert token["https://x.test/refused"] == "JsonWebTokenError: invalid signature"
    assert token["https://x.test/lodash"] == [[2, 4], [6]]
    # Exact versions, transitive ones included, pinned on the hook and its version.
    pinned = {package["name"]: package["version"] for package in world.hook.dependency_lock}
    assert pinned["jsonwebtoken"] == JSONWEBTOKEN and pinned["lodash"] == LODASH
    assert {"jws", "jwa", "safe-buffer", "semver", "ms"} <= set(pinned)
    assert world.hook.versions.get().dependency_lock == world.hook.dependency_lock


AXIOS_ACTION = """const axios = require('axios');
exports.onExecuteCredentialsExchange = async (event, api) => {
  const client = axios.create({ adapter: 'fetch', timeout: 3000, headers: { 'x-team': 'orders' } });
  const response = await client.post('UPSTREAM/echo', { client_id: event.client.client_id });
  const tier = await axios.get('UPSTREAM/tier', { adapter: 'fetch' });
  let failed = '';
  try { await client.get('UPSTREAM/nowhere'); } catch (e) { failed = e.response.status + ' ' + e.message; }
  api.accessToken.setCustomClaim('https://x.test/axios', {
    status: response.status,
    body: JSON.parse(response.data.body),
    team: response.data.headers['x-team'],
    tier: tier.data.tier,
    failed,
  });
};"""


def test_axios_calls_an_upstream_through_its_fetch_adapter_in_an_action(
    isolation, settings, upstream
):
    settings.TESSERA_EGRESS_ALLOW = LOOPBACK
    tenant, _, credentials = flow(
        "axios",
        AXIOS_ACTION.replace("UPSTREAM", upstream),
        [{"name": "axios", "version": AXIOS}],
        timeout_ms=SLOW_MS,
    )

    claim = claims_for(tenant, credentials)["https://x.test/axios"]

    assert claim == {
        "status": 200,
        "body": {"client_id": credentials[0].client_id},
        "team": "orders",
        "tier": "gold",
        "failed": "404 Request failed with status code 404",
    }


def tls_proxy(context: ssl.SSLContext, port: int) -> Iterator[int]:
    """HTTPS on a free port, forwarded to the live server's HTTP ``port``."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            if isinstance(sink, ssl.SSLSocket):  # a TLS end says so (close_notify)
                with contextlib.suppress(OSError, ValueError):
                    sink.unwrap()
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def serve(raw: socket.socket) -> None:
        try:
            secure = context.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()
            return
        inner = socket.create_connection(("127.0.0.1", port))
        threading.Thread(target=pump, args=(inner, secure), daemon=True).start()
        pump(secure, inner)

    def accept() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(raw,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()[1]
    stop.set()
    listener.close()


SDK_ACTION = """const { ManagementClient } = require('auth0');
exports.onExecuteCredentialsExchange = async (event, api) => {
  const management = new ManagementClient({
    domain: event.secrets.DOMAIN,
    clientId: event.secrets.CLIENT_ID,
    clientSecret: event.secrets.CLIENT_SECRET,
  });
  const { data } = await management.clients.get({ client_id: event.secrets.PARTNER });
  api.accessToken.setCustomClaim('https://x.test/partner', {
    name: data.name, tier: data.client_metadata.tier,
  });
};"""


@pytest.mark.django_db(transaction=True)
def test_the_auth0_sdk_reads_a_client_through_tesseras_management_api_over_tls(
    isolation,
    live,  # noqa: F811 (the fixture imported above)
    settings,
    tmp_path,
):
    context, ca_file = tls_context(tmp_path)
    for port in tls_proxy(context, int(live.url.rsplit(":", 1)[1])):
        settings.PUBLIC_URL = f"https://127.0.0.1:{port}"
        settings.TESSERA_EGRESS_ALLOW = LOOPBACK
        settings.TESSERA_EGRESS_CA_FILE = str(ca_file)
        # The partner's Tessera tenant: its Management API is what the SDK calls.
        partner = make_tenant("partner")
        admin, admin_secret = management_client_create(tenant=partner, actor=TEST_ACTOR)
        read, _ = client_create(
            tenant=partner, name="Reader", metadata={"tier": "gold"}, actor=TEST_ACTOR
        )
        managed = ManagedTenant(partner, admin.client_id, admin_secret)
        tenant, created, credentials = flow(
            "sdk", SDK_ACTION, [{"name": "auth0", "version": AUTH0}], timeout_ms=SLOW_MS
        )
        action_update(
            action=created,
            secrets=[
                SecretSpec("DOMAIN", f"127.0.0.1:{port}/{partner.slug}"),
                SecretSpec("CLIENT_ID", managed.client_id),
                SecretSpec("CLIENT_SECRET", managed.client_secret),
                SecretSpec("PARTNER", read.client_id),
            ],
            actor=TEST_ACTOR,
        )
        action_deploy(action=created, actor=TEST_ACTOR)

        claim = claims_for(tenant, credentials)["https://x.test/partner"]

        assert claim == {"name": "Reader", "tier": "gold"}
        pinned = {
            package["name"] for package in created.versions.get(deployed=True).dependency_lock
        }
        assert {"auth0", "jose", "uuid"} <= pinned


# ---- the lock: stored once, pinned, and part of the warm context's name -------------


def test_two_tenants_using_one_package_store_it_once(registry):
    registry.publish("shared-pkg", "1.0.0", main="module.exports = (n) => 'shared:' + n;")
    script = action(
        "api.accessToken.setCustomClaim('https://x.test/v', require('shared-pkg')(event.tenant.id));"
    )

    one = World("one", script, dependencies={"shared-pkg": "^1.0.0"})
    two = World("two", script, dependencies={"shared-pkg": "^1.0.0"})

    assert one.claims()["https://x.test/v"] == f"shared:{one.tenant.slug}"
    assert two.claims()["https://x.test/v"] == f"shared:{two.tenant.slug}"
    assert sum(registry.downloads.values()) == 1  # fetched and unpacked once
    (package,) = one.hook.dependency_lock
    assert two.hook.dependency_lock == [package]
    assert npm.store_dir(npm.default_store(), package["integrity"]).is_dir()


def test_a_deployed_version_keeps_its_packages_when_the_registry_moves_on(registry):
    registry.publish("moving", "1.0.0")
    code = action("api.accessToken.setCustomClaim('https://x.test/v', require('moving').version);")
    tenant, created, credentials = flow("pinned", code, [{"name": "moving", "version": "^1.0"}])
    assert claims_for(tenant, credentials)["https://x.test/v"] == "1.0.0"

    registry.publish("moving", "1.1.0")
    # A rebuild for new code keeps the draft's lock: the dependencies did not change.
    updated = action_update(action=created, code=code + "\n// v2", actor=TEST_ACTOR)
    assert updated.status == ActionStatus.BUILT
    assert [p["version"] for p in updated.dependency_lock] == ["1.0.0"]
    action_deploy(action=updated, actor=TEST_ACTOR)
    assert claims_for(tenant, credentials)["https://x.test/v"] == "1.0.0"

    # New dependencies are resolved anew, and run once deployed.
    updated = action_update(
        action=updated, dependencies=[{"name": "moving", "version": "^1.1"}], actor=TEST_ACTOR
    )
    assert [p["version"] for p in updated.dependency_lock] == ["1.1.0"]
    assert claims_for(tenant, credentials)["https://x.test/v"] == "1.0.0"  # not deployed yet
    action_deploy(action=updated, actor=TEST_ACTOR)
    assert claims_for(tenant, credentials)["https://x.test/v"] == "1.1.0"


def test_a_hook_whose_dependencies_change_gets_a_new_warm_context(isolation, registry):
    registry.publish("swap", "1.0.0")
    registry.publish("swap", "2.0.0")
    world = World(
        "swap",
        action("api.accessToken.setCustomClaim('https://x.test/v', require('swap').version);"),
        dependencies={"swap": "1.0.0"},
    )
    assert world.claims()["https://x.test/v"] == "1.0.0"  # now warm

    hook_update(hook=world.hook, dependencies={"swap": "2.0.0"}, actor=Actor.cli())

    assert world.claims()["https://x.test/v"] == "2.0.0"  # same script, new lock: new context
    assert world.hook.versions.get().dependency_lock[0]["version"] == "1.0.0"


def test_a_script_that_requires_a_dropped_dependency_is_refused(registry):
    registry.publish("needed", "1.0.0")
    world = World(
        "dropped", "const needed = require('needed');\n" + action(""), dependencies={"needed": "1"}
    )

    with pytest.raises(ValidationError, match="Cannot find module 'needed'"):
        hook_update(hook=world.hook, dependencies={}, actor=Actor.cli())

    world.hook.refresh_from_db()
    assert world.hook.dependencies == {"needed": "1"}


# ---- hostile packages and declarations ---------------------------------------------


def test_an_install_script_never_runs(isolation, registry, tmp_path):
    marker = tmp_path / "installed"
    registry.publish(
        "installs",
        "1.0.0",
        manifest={
            "scripts": {
                "preinstall": f"touch {marker}",
                "install": f"node install.js && touch {marker}",
                "postinstall": f"touch {marker}",
                "prepare": f"touch {marker}",
            }
        },
        files={"install.js": f"require('fs').writeFileSync({str(marker)!r}, 'x');"},
        main="module.exports = 'loaded';",
    )

    world = World(
        "installs",
        action("api.accessToken.setCustomClaim('https://x.test/v', require('installs'));"),
        dependencies={"installs": "1.0.0"},
    )

    assert world.claims()["https://x.test/v"] == "loaded"
    assert not marker.exists()


@pytest.mark.parametrize(
    "name", ["../../etc", "..", "@scope/../x", "a/b", "/abs", ".hidden", "x\\y", "x" * 215]
)
def test_a_package_name_that_walks_a_path_is_refused(registry, name):
    tenant = make_tenant("names")

    with pytest.raises(DependencyRefused, match="is not an npm package name"):
        hook_create(
            tenant=tenant, name="h", script=action(""), dependencies={name: "1"}, actor=TEST_ACTOR
        )
    if len(name) > 214:  # npm's limit: an Action's write refuses it before any build
        with pytest.raises(ValidationError, match="longer than 214 characters"):
            built(tenant, action(""), [{"name": name, "version": "1"}])
        return
    refused = built(tenant, action(""), [{"name": name, "version": "1"}])
    assert "is not an npm package name" in failure(refused)


def test_a_tarball_that_escapes_its_folder_or_a_transitive_name_that_walks_is_refused(
    registry, tmp_path
):
    escape = f"escaped-{registry.publish('decoy', '1.0.0')}.js"
    registry.publish(
        "escapes",
        "1.0.0",
        data=tarball({"package/package.json": "{}", f"package/../../{escape}": "x"}, top=""),
    )
    registry.publish("walks", "1.0.0", manifest={"dependencies": {"../../../tmp": "1"}})
    tenant = make_tenant("escape")

    assert "the tarball cannot be read" in failure(
        built(tenant, action(""), [{"name": "escapes", "version": "1.0.0"}])
    )
    store = npm.default_store()
    assert not (store / escape).exists() and not (store.parent / escape).exists()
    Action.objects.all().delete()
    assert "is not an npm package name" in failure(
        built(tenant, action(""), [{"name": "walks", "version": "1.0.0"}])
    )


def test_a_package_over_the_size_limit_is_refused_before_it_is_unpacked(registry, settings):
    settings.TESSERA_NPM_MAX_UNPACKED_BYTES = 1_000_000
    registry.publish("bomb", "1.0.0", files={"zeros.bin": b"\0" * 30_000_000})
    package = registry.packuments["bomb"]["versions"]["1.0.0"]
    assert len(registry.tarballs[package["dist"]["tarball"].rsplit("/", 1)[1]]) < 100_000

    refused = built(make_tenant("bomb"), action(""), [{"name": "bomb", "version": "1.0.0"}])

    assert "unpack to more than 1000000 bytes" in failure(refused)
    integrity = package["dist"]["integrity"]
    assert not npm.store_dir(npm.default_store(), integrity).exists()


def test_unknown_packages_and_versions_fail_the_build_naming_them(registry):
    registry.publish("exists", "1.0.0")
    tenant = make_tenant("unknown")

    assert "no version of exists satisfies '^2.0.0'" in failure(
        built(tenant, action(""), [{"name": "exists", "version": "^2.0.0"}])
    )
    Action.objects.all().delete()
    assert "not found in the registry" in failure(
        built(tenant, action(""), [{"name": "no-such-package", "version": "1.0.0"}])
    )
    with pytest.raises(DependencyRefused, match="no version of exists satisfies"):
        hook_create(
            tenant=tenant,
            name="h",
            script=action(""),
            dependencies={"exists": "99.0.0"},
            actor=TEST_ACTOR,
        )


def test_more_than_ten_dependencies_are_refused(registry):
    tenant = make_tenant("eleven")
    eleven = {f"p{i}": "1.0.0" for i in range(11)}

    with pytest.raises(ValidationError, match="at most 10 dependencies"):
        built(tenant, action(""), [{"name": n, "version": v} for n, v in eleven.items()])
    with pytest.raises(DependencyRefused, match="At most 10 dependencies"):
        hook_create(
            tenant=tenant, name="h", script=action(""), dependencies=eleven, actor=TEST_ACTOR
        )
    assert sum(registry.downloads.values()) == 0


def test_native_addons_and_es_modules_fail_the_build_saying_so(registry):
    registry.publish("gyp-file", "1.0.0", files={"binding.gyp": "{}"})
    registry.publish("gyp-flag", "1.0.0", manifest={"gypfile": True})
    registry.publish("prebuilt", "1.0.0", files={"build/Release/addon.node": b"\x7fELF"})
    registry.publish("esm-only", "1.0.0", manifest={"type": "module"})
    tenant = make_tenant("native")

    for name, reason in [
        ("gyp-file", "ships native code: only pure JavaScript packages run in hooks"),
        ("gyp-flag", "needs a native build: only pure JavaScript packages run in hooks"),
        ("prebuilt", "ships native code"),
        ("esm-only", "is an ES module only"),
    ]:
        Action.objects.all().delete()
        assert reason in failure(built(tenant, action(""), [{"name": name, "version": "1.0.0"}]))


def test_an_integrity_mismatch_or_an_unreachable_registry_fails_the_build(registry, settings):
    registry.publish("tampered", "1.0.0", integrity="sha512-" + "A" * 86 + "==")
    tenant = make_tenant("tampered")

    assert "does not match its integrity hash" in failure(
        built(tenant, action(""), [{"name": "tampered", "version": "1.0.0"}])
    )

    Action.objects.all().delete()
    settings.TESSERA_NPM_REGISTRY = "http://127.0.0.1:9"
    assert "did not answer" in failure(
        built(tenant, action(""), [{"name": "tampered", "version": "1.0.0"}])
    )


# ---- the Management API ------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_management_api_answers_built_or_failed_and_refuses_to_deploy_a_failed_build(
    live,  # noqa: F811 (the fixture imported above)
    registry,
):
    registry.publish("ok-pkg", "1.0.0")
    acme, globex = managed_tenant("acme"), managed_tenant("globex")
    headers = {"Authorization": f"Bearer {acme.token()}"}
    body: dict[str, Any] = {
        "name": "a",
        "code": "const ok = require('ok-pkg');\n" + action(""),
        "supported_triggers": [{"id": "credentials-exchange", "version": "v2"}],
        "dependencies": [{"name": "ok-pkg", "version": "1.0.0"}],
    }

    good = requests.post(f"{acme.api_url}actions/actions", json=body, headers=headers, timeout=60)
    body["name"], body["dependencies"] = "b", [{"name": "ok-pkg", "version": "7.0.0"}]
    bad = requests.post(f"{acme.api_url}actions/actions", json=body, headers=headers, timeout=60)
    hook = requests.post(
        f"{acme.api_url}hooks",
        json={
            "name": "h",
            "script": action(""),
            "triggerId": "credentials-exchange",
            "dependencies": {"ok-pkg": "7.0.0"},
        },
        headers=headers,
        timeout=60,
    )

    assert good.status_code == 201 and good.json()["status"] == "built", good.text
    assert bad.status_code == 201 and bad.json()["status"] == "failed"
    assert "no version of ok-pkg satisfies '7.0.0'" in bad.json()["errors"][0]["msg"]
    deploy = requests.post(
        f"{acme.api_url}actions/actions/{bad.json()['id']}/deploy", headers=headers, timeout=30
    )
    assert deploy.status_code == 400
    assert "must be in the 'built' state" in deploy.json()["message"]
    assert hook.status_code == 400 and "no version of ok-pkg" in hook.json()["message"]
    assert not Action.objects.filter(tenant=globex.tenant).exists()


def test_the_store_is_read_by_path_only_within_a_lock(registry):
    """require cannot reach outside the packages of its lock, even by a path."""
    registry.publish("inside", "1.0.0", files={"data.json": '{"x": 1}'})
    world = World(
        "paths",
        action(
            "const out = [];\n"
            "for (const id of ['inside/data.json', 'inside/../../etc/passwd',"
            " '../../../../etc/passwd', '/etc/passwd', 'inside/../builtin:node_modules/buffer']) {\n"
            "  try { out.push(JSON.stringify(require(id))); } catch (e) { out.push(e.code); }\n"
            "}\n"
            "api.accessToken.setCustomClaim('https://x.test/v', out);"
        ),
        dependencies={"inside": "1.0.0"},
    )

    assert world.claims()["https://x.test/v"] == [
        '{"x":1}',
        "MODULE_NOT_FOUND",
        "MODULE_NOT_FOUND",
        "MODULE_NOT_FOUND",
        "MODULE_NOT_FOUND",
    ]


# ---- the CLI and the dashboard ------------------------------------------------------


def test_the_cli_declares_dependencies_and_says_why_one_cannot_be_had(registry, tmp_path):
    registry.publish("@team/tier", "1.2.0", main="module.exports = () => 'gold';")
    script = tmp_path / "hook.js"
    script.write_text(
        "const tier = require('@team/tier');\n"
        + action("api.accessToken.setCustomClaim('https://x.test/tier', tier());")
    )
    tenant, other = make_tenant("cli"), make_tenant("cli-other")
    out = StringIO()

    call_command(
        "hooks",
        "create",
        "-n",
        "tiered",
        "-p",
        tenant.slug,
        "-d",
        "@team/tier@^1",
        str(script),
        stdout=out,
    )
    with pytest.raises(CommandError, match="no version of @team/tier satisfies '9'"):
        call_command(
            "hooks", "update", "tiered", "-p", tenant.slug, "-d", "@team/tier@9", str(script)
        )

    hook = tenant.hooks.get()
    assert hook.dependencies == {"@team/tier": "^1"}
    assert [(p["path"], p["version"]) for p in hook.dependency_lock] == [
        ("node_modules/@team/tier", "1.2.0")
    ]
    assert not other.hooks.exists()


def test_the_dashboards_script_check_loads_the_hooks_packages(registry):
    registry.publish("form-pkg", "1.0.0")
    world = World("form", action(""), dependencies={"form-pkg": "1.0.0"})
    script = "const pkg = require('form-pkg');\n" + action("")

    form = HookScriptForm(
        data={"script": script, "base_version": world.hook.version}, instance=world.hook
    )

    assert form.is_valid(), form.errors


def test_a_package_may_load_what_hooks_lack_but_not_use_it(isolation, registry):
    registry.publish(
        "uses-node",
        "1.0.0",
        main=(
            "const http = require('http'), zlib = require('zlib'), { Readable } = require('stream');\n"
            "module.exports = {\n"
            "  roundTrip: (text) => zlib.inflateSync(zlib.deflateSync(Buffer.from(text))).toString(),\n"
            "  readable: typeof Readable,\n"
            "  get: () => http.get,\n"
            "};"
        ),
    )
    world = World(
        "uses-node",
        action(
            "const pkg = require('uses-node');\n"
            "let failed = ''; try { pkg.get(); } catch (e) { failed = e.message; }\n"
            "let direct = ''; try { require('http'); } catch (e) { direct = e.message; }\n"
            "api.accessToken.setCustomClaim('https://x.test/v',"
            " [pkg.roundTrip('héllo'), pkg.readable, failed, direct]);"
        ),
        dependencies={"uses-node": "1.0.0"},
    )

    absent = "The module 'http' is not available in hooks (no filesystem, processes or raw sockets)"
    assert world.claims()["https://x.test/v"] == ["héllo", "function", absent, absent]


def test_the_hook_page_saves_dependencies_and_shows_what_they_pinned(registry):
    registry.publish("@team/page-pkg", "2.1.0")
    alpha, bravo = make_world("alpha"), make_world("bravo")
    http = HttpClient()
    http.force_login(alpha.admin)
    url = reverse("admin:hooks_hook_dependencies", args=[alpha.hook.pk])
    page = reverse("admin:hooks_hook_change", args=[alpha.hook.pk])

    saved = http.post(url, {"dependencies": "@team/page-pkg@^2\n"}, follow=True)
    refused = http.post(url, {"dependencies": "../etc@1\n"}, follow=True)
    other = http.post(
        reverse("admin:hooks_hook_dependencies", args=[bravo.hook.pk]), {"dependencies": "x@1"}
    )

    assert "Dependencies saved (@team/page-pkg@2.1.0)." in saved.content.decode()
    assert "is not an npm package name" in refused.content.decode()
    assert other.status_code == 404
    alpha.hook.refresh_from_db()
    bravo.hook.refresh_from_db()
    assert alpha.hook.dependencies == {"@team/page-pkg": "^2"}
    assert bravo.hook.dependencies == {} and not bravo.hook.dependency_lock
    shown = http.get(page).content.decode()
    assert "<code>@team/page-pkg</code>" in shown and "<code>2.1.0</code>" in shown


def test_a_server_whose_store_lacks_a_pinned_package_fetches_that_very_version(registry):
    registry.publish("fleet-pkg", "1.0.0")
    world = World(
        "fleet",
        action("api.accessToken.setCustomClaim('https://x.test/v', require('fleet-pkg').version);"),
        dependencies={"fleet-pkg": "^1"},
    )
    registry.publish("fleet-pkg", "1.9.0")  # what resolving again would pick
    (package,) = world.hook.dependency_lock
    shutil.rmtree(npm.store_dir(npm.default_store(), package["integrity"]))
    config_cache.forget()  # as a server that never ran this hook

    assert world.claims()["https://x.test/v"] == "1.0.0"
    assert sum(registry.downloads.values()) == 2  # the pinned tarball, again


def test_new_dependencies_that_break_a_live_hook_are_refused(registry):
    registry.publish("brittle", "1.0.0", main="module.exports = () => 'fine';")
    registry.publish(
        "brittle", "2.0.0", main="module.exports = () => { throw new Error('v2 broke'); };"
    )
    world = World(
        "brittle",
        action("api.accessToken.setCustomClaim('https://x.test/v', require('brittle')());"),
        dependencies={"brittle": "1.0.0"},
    )

    with pytest.raises(HookSampleRunFailed, match="v2 broke"):
        hook_update(hook=world.hook, dependencies={"brittle": "2.0.0"}, actor=Actor.cli())

    world.hook.refresh_from_db()
    assert world.hook.dependency_lock[0]["version"] == "1.0.0"
    assert world.claims()["https://x.test/v"] == "fine"
