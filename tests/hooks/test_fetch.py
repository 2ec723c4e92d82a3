"""Hooks that call out: fetch done by the host, through the real token
endpoint, against real local upstreams (plain HTTP, TLS with a certificate
the test makes, one that never answers), in both isolation modes; and the
egress policy refusing every hostile target before any packet leaves."""

import contextlib
import ipaddress
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from hooks.runtime import egress
from hooks.runtime.egress import (
    EgressPolicy,
    EgressRefused,
    FetchRequest,
    Pattern,
    perform,
    redact_url,
)
from tests.hooks.network import LOOPBACK, World, action

pytestmark = pytest.mark.django_db


def test_a_hook_reads_its_partner_api_and_the_run_log_shows_the_request(
    isolation, settings, upstream
):
    settings.TESSERA_EGRESS_ALLOW = LOOPBACK
    world = World(
        "fetcher",
        action(
            f"const r = await fetch('{upstream}/tier?api_key=sk_live_0123456789abcdef0123&x=1');\n"
            "const body = await r.json();\n"
            "api.accessToken.setCustomClaim('https://x.test/tier', body.tier);\n"
            "api.accessToken.setCustomClaim('https://x.test/ok', r.ok && r.status === 200);"
        ),
    )
    neighbour = World("quiet", action("api.accessToken.setCustomClaim('https://x.test/n', 1);"))

    token = world.claims()

    assert token["https://x.test/tier"] == "gold"
    assert token["https://x.test/ok"] is True
    console = world.last_run().console
    assert f"[fetch] GET {upstream}/tier?api_key=[redacted]&x=1 → 200" in console
    assert "sk_live_0123456789abcdef0123" not in console
    assert neighbour.claims()["https://x.test/n"] == 1


def test_a_post_carries_its_body_and_headers(settings, upstream):
    settings.TESSERA_EGRESS_ALLOW = LOOPBACK
    world = World(
        "poster",
        action(
            f"const r = await fetch(new Request('{upstream}/echo', {{method: 'post', "
            "headers: new Headers({'X-Signature': 'abc', 'Content-Type': 'application/json', "
            "'X-Empty': ''}), "
            "body: JSON.stringify({client: event.client.client_id, word: 'héllo'})}));\n"
            "const echo = await r.json();\n"
            "api.accessToken.setCustomClaim('https://x.test/echo', echo);"
        ),
    )

    echo = world.claims()["https://x.test/echo"]

    assert echo["method"] == "POST"
    assert json.loads(echo["body"]) == {"client": world.client.client_id, "word": "héllo"}
    assert echo["headers"]["x-signature"] == "abc"
    assert echo["headers"]["content-type"] == "application/json"
    assert echo["headers"]["x-empty"] == ""
    assert echo["headers"]["user-agent"] == "Tessera"  # no library versions


def test_a_tenants_requests_share_a_kept_connection_and_no_other_tenant_does(
    isolation, settings, upstream
):
    settings.TESSERA_EGRESS_ALLOW = LOOPBACK
    twice = (
        f"const a = await (await fetch('{upstream}/echo')).json();\n"
        f"const b = await (await fetch('{upstream}/echo', {{method: 'POST', body: 'x'}})).json();\n"
        "api.accessToken.setCustomClaim('https://x.test/ports', [a.port, b.port]);"
    )
    first, second = World("keeper", action(twice)), World("other", action(twice))

    mine = first.claims()["https://x.test/ports"]
    theirs = second.claims()["https://x.test/ports"]

    assert mine[0] == mine[1]  # one handshake, two requests
    assert theirs[0] == theirs[1]
    assert theirs[0] != mine[0]  # never the other tenant's connection


def test_a_kept_connection_the_upstream_dropped_costs_the_next_run_nothing(
    isolation, settings, upstream
):
    settings.TESSERA_EGRESS_ALLOW = LOOPBACK
    once = (
        f"const r = await (await fetch('{upstream}/echo-then-drop')).json();\n"
        "api.accessToken.setCustomClaim('https://x.test/port', r.port);"
    )
    dropped, other = World("dropped", action(once)), World("beside", action(once))

    ports = [dropped.claims()["https://x.test/port"] for _ in range(3)]
    beside = other.claims()["https://x.test/port"]

    assert len(set(ports)) == 3  # each run on a new connection, none failed
    assert beside not in ports


def test_a_header_value_cannot_smuggle_another_header(isolation, settings, upstream):
    settings.TESSERA_EGRESS_ALLOW = LOOPBACK
    world = World(
        "smuggler",
        action(
            "let caught = 'sent';\n"
            f"try {{ await fetch('{upstream}/echo', {{headers: [['X-A', 'a\\r\\nX-Injected: 1']]}}); }}\n"
            "catch (e) { caught = e.name + ': ' + e.message; }\n"
            "api.accessToken.setCustomClaim('https://x.test/caught', caught);"
        ),
    )

    assert world.claims()["https://x.test/caught"].startswith("TypeError")


def test_a_tls_upstream_is_verified_against_the_trusted_roots(settings, tls_upstream):
    url, ca_file = tls_upstream
    settings.TESSERA_EGRESS_ALLOW = LOOPBACK
    script = action(
        f"try {{ const r = await fetch('{url}/tier'); "
        "api.accessToken.setCustomClaim('https://x.test/tier', (await r.json()).tier); }\n"
        "catch (e) { api.accessToken.setCustomClaim('https://x.test/error', e.message); }"
    )
    world = World("tls", script)

    untrusted = world.claims()
    settings.TESSERA_EGRESS_CA_FILE = str(ca_file)
    trusted = world.claims()

    assert "certificate verify failed" in untrusted["https://x.test/error"]
    assert trusted["https://x.test/tier"] == "gold"


HOSTILE_URLS = [
    "http://127.0.0.1/",
    "http://localhost/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://0x7f000001/",
    "http://2130706433/",
    "http://0.0.0.0/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1]/",
    "http://10.0.0.1/",
    "http://192.168.1.1/",
    "http://172.16.0.1/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "http://[::ffff:169.254.169.254]/",
    "file:///etc/passwd",
    "ftp://example.com/",
    "gopher://example.com/",
    "http://user:pass@example.com/",
]


def test_the_default_policy_refuses_every_private_or_odd_target(isolation):
    urls = json.dumps(HOSTILE_URLS)
    world = World(
        "probe",
        action(
            f"const out = {{}};\nfor (const url of {urls}) {{\n"
            "  try { await fetch(url); out[url] = 'reached'; }\n"
            "  catch (e) { out[url] = e.name + ': ' + e.message; }\n}\n"
            "api.accessToken.setCustomClaim('https://x.test/out', out);"
        ),
    )

    out = world.claims()["https://x.test/out"]

    assert set(out) == set(HOSTILE_URLS)
    assert {url: verdict.split(":")[0] for url, verdict in out.items()} == {
        url: "TypeError" for url in HOSTILE_URLS
    }
    assert "not a public address" in out["http://[::ffff:127.0.0.1]/"]
    assert "not a public address" in out["http://0x7f000001/"]
    assert "not a public address" in out["http://2130706433/"]
    # A name: refused on what it resolves to (a public name that resolves to
    # loopback, through a resolver the test controls: the policy's own tests).
    assert "localhost resolves to" in out["http://localhost/"]
    assert "not a public address" in out["http://localhost/"]
    assert "scheme 'file' is not allowed" in out["file:///etc/passwd"]
    assert "scheme 'ftp' is not allowed" in out["ftp://example.com/"]
    assert "scheme 'gopher' is not allowed" in out["gopher://example.com/"]


def test_a_redirect_to_the_metadata_address_is_refused(isolation, settings, upstream):
    settings.TESSERA_EGRESS_ALLOW = LOOPBACK
    world = World(
        "redirected",
        action(
            f"const ok = await fetch('{upstream}/to-tier');\n"
            "api.accessToken.setCustomClaim('https://x.test/followed', ok.redirected);\n"
            f"try {{ await fetch('{upstream}/to-metadata'); }}\n"
            "catch (e) { api.accessToken.setCustomClaim('https://x.test/error', e.message); }"
        ),
    )

    token = world.claims()

    assert token["https://x.test/followed"] is True
    assert "169.254.169.254" in token["https://x.test/error"]
    assert "not a public address" in token["https://x.test/error"]


def test_a_host_header_naming_another_host_is_refused(isolation, settings, upstream):
    settings.TESSERA_EGRESS_ALLOW = LOOPBACK
    world = World(
        "hosty",
        action(
            f"try {{ await fetch('{upstream}/echo', {{headers: {{Host: 'metadata.internal'}}}}); }}\n"
            "catch (e) { api.accessToken.setCustomClaim('https://x.test/error', e.message); }"
        ),
    )

    assert "the host header is set by the host" in world.claims()["https://x.test/error"]


def test_a_huge_response_fails_the_fetch_not_the_server(isolation, settings, upstream):
    settings.TESSERA_EGRESS_ALLOW = LOOPBACK
    world = World(
        "hungry",
        action(
            f"try {{ await (await fetch('{upstream}/huge')).text(); }}\n"
            "catch (e) { api.accessToken.setCustomClaim('https://x.test/error', e.message); }"
        ),
    )

    neighbour = World("fed", action("api.accessToken.setCustomClaim('https://x.test/n', 1);"))

    assert "larger than 5000000 bytes" in world.claims()["https://x.test/error"]
    assert neighbour.claims()["https://x.test/n"] == 1


def test_a_response_with_an_invalid_header_name_fails_the_fetch(isolation, settings, upstream):
    """As Node's fetch does: the hook sees a TypeError, never a Headers it
    cannot build. The response's other headers come through lowercased."""
    settings.TESSERA_EGRESS_ALLOW = LOOPBACK
    world = World(
        "strict",
        action(
            f"const ok = await fetch('{upstream}/tier');\n"
            "api.accessToken.setCustomClaim('https://x.test/type', ok.headers.get('Content-Type'));\n"
            f"try {{ await fetch('{upstream}/bad-header'); }}\n"
            "catch (e) { api.accessToken.setCustomClaim('https://x.test/error', `${e.name}: ${e.message}`); }"
        ),
    )

    claims = world.claims()

    assert claims["https://x.test/type"] == "application/json"
    assert claims["https://x.test/error"] == (
        "TypeError: fetch failed: the response has an invalid header line: 'Tier Level'"
    )


def test_an_endless_response_ends_with_the_run_and_the_neighbour_is_served(
    isolation, settings, upstream
):
    settings.TESSERA_EGRESS_ALLOW = LOOPBACK
    world = World("endless", action(f"await (await fetch('{upstream}/endless')).text();"), 1000)
    neighbour = World("calm", action("api.accessToken.setCustomClaim('https://x.test/n', 1);"))

    started = time.monotonic()
    response = world.token()
    took = time.monotonic() - started

    assert response.status_code == 500
    assert response.json()["error"] == "server_error"
    assert took < 3
    assert neighbour.claims()["https://x.test/n"] == 1


def test_abort_signal_timeout_ends_a_wait_on_a_silent_upstream(isolation, settings, upstream):
    settings.TESSERA_EGRESS_ALLOW = LOOPBACK
    world = World(
        "patient",
        action(
            "const started = Date.now();\n"
            f"try {{ await fetch('{upstream}/hang', {{signal: AbortSignal.timeout(200)}}); }}\n"
            "catch (e) { api.accessToken.setCustomClaim('https://x.test/error', e.name); }\n"
            "api.accessToken.setCustomClaim('https://x.test/ms', Date.now() - started);"
        ),
    )

    token = world.claims()

    assert token["https://x.test/error"] == "TimeoutError"
    assert 150 <= token["https://x.test/ms"] < 1500


def test_a_run_out_of_time_waiting_keeps_its_sandbox_and_leaves_the_next_run_alone(
    isolation, settings, upstream
):
    """A run whose deadline passes while it waits (here on an upstream that
    never answers) was running no JavaScript: the next run uses the same
    sandbox (its globals are there: no new compile), and the late run's
    timer never fires in it."""
    settings.TESSERA_EGRESS_ALLOW = LOOPBACK
    count = "globalThis.runs = (globalThis.runs || 0) + 1;\n"
    waiter = World(
        "waiter",
        action(
            count + "if (globalThis.runs === 1) {\n"
            "  setTimeout(() => { globalThis.late = 'timer'; }, 1100);\n"
            f"  await fetch('{upstream}/hang');\n"
            "}\n"
            "await new Promise((done) => setTimeout(done, 300));\n"
            f"const r = await (await fetch('{upstream}/tier')).json();\n"
            "api.accessToken.setCustomClaim('https://x.test/runs', globalThis.runs);\n"
            "api.accessToken.setCustomClaim('https://x.test/tier', r.tier);\n"
            "api.accessToken.setCustomClaim('https://x.test/late', globalThis.late || null);"
        ),
        timeout_ms=1000,
    )
    assert waiter.token().status_code == 500
    assert "did not finish within 1000 ms" in waiter.last_run().error
    claims = waiter.claims()

    assert [claims[f"https://x.test/{name}"] for name in ("runs", "tier", "late")] == [
        2,
        "gold",
        None,
    ]


def test_ten_thousand_requests_stop_at_the_per_run_limit(isolation, settings, upstream):
    settings.TESSERA_EGRESS_ALLOW = LOOPBACK
    world = World(
        "greedy",
        action(
            "const calls = [];\n"
            f"for (let i = 0; i < 10000; i++) calls.push(fetch('{upstream}/tier'));\n"
            "const results = await Promise.allSettled(calls);\n"
            "const ok = results.filter((r) => r.status === 'fulfilled').length;\n"
            "const refused = results.filter((r) => r.status === 'rejected' && "
            "/more than 20 requests/.test(r.reason.message)).length;\n"
            "api.accessToken.setCustomClaim('https://x.test/counts', [ok, refused]);"
        ),
        timeout_ms=10_000,
    )

    neighbour = World("modest", action("api.accessToken.setCustomClaim('https://x.test/n', 1);"))

    assert world.claims()["https://x.test/counts"] == [20, 9980]
    assert neighbour.claims()["https://x.test/n"] == 1
    console = world.last_run().console
    assert console.count("[fetch]") == 21  # the limit, then one line for the rest
    assert "(and 9979 more like it)" in console


def test_fetch_is_absent_from_the_network_when_the_operator_turns_it_off(settings, upstream):
    settings.TESSERA_EGRESS_ALLOW = LOOPBACK
    settings.TESSERA_HOOK_NETWORK = False
    world = World(
        "offline",
        action(
            f"try {{ await fetch('{upstream}/tier'); }}\n"
            "catch (e) { api.accessToken.setCustomClaim('https://x.test/error', e.message); }"
        ),
    )

    assert "network access is off" in world.claims()["https://x.test/error"]


# ---- the policy itself ---------------------------------------------------------


def public(host: str, port: int) -> list[str]:
    return ["93.184.215.14"]


def rebinding(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


def test_a_public_name_that_resolves_to_loopback_is_refused():
    policy = EgressPolicy(resolver=rebinding)

    with pytest.raises(EgressRefused, match=r"127\.0\.0\.1, which is not a public address"):
        policy.connect_address("looks-public.example.com", 443)


def test_the_address_connected_to_is_the_checked_one():
    assert EgressPolicy(resolver=public).connect_address("api.example.com", 443) == "93.184.215.14"


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "::1", "::ffff:127.0.0.1", "10.1.2.3", "172.31.0.1", "192.168.0.1",
     "169.254.169.254", "fe80::1", "100.64.0.1", "0.0.0.0",  # noqa: S104 - refused, not bound
     "::", "224.0.0.1", "ff02::1",
     "fc00::1", "::ffff:10.0.0.1", "198.18.0.1", "240.0.0.1"],
)  # fmt: skip
def test_non_public_addresses_are_refused(address):
    with pytest.raises(EgressRefused):
        EgressPolicy().check_address("h", ipaddress.ip_address(address), 80)


def test_ports_beyond_80_and_443_need_the_operator():
    policy = EgressPolicy()
    address = ipaddress.ip_address("93.184.215.14")

    policy.check_address("h", address, 443)
    with pytest.raises(EgressRefused, match="port 8080"):
        policy.check_address("h", address, 8080)
    EgressPolicy.from_text(allow="h:8080").check_address("h", address, 8080)


def test_deny_wins_over_allow_and_the_tenant_list_narrows():
    policy = EgressPolicy.from_text(allow="10.0.0.0/8:*", deny="10.9.0.0/16")
    policy.check_address("h", ipaddress.ip_address("10.1.0.1"), 80)
    with pytest.raises(EgressRefused, match="denied by the operator"):
        policy.check_address("h", ipaddress.ip_address("10.9.0.1"), 80)

    narrow = EgressPolicy.from_text(tenant_hosts=["api.partner.com", "*.hooks.example"])
    narrow.check_url("https://api.partner.com/x")
    narrow.check_url("https://eu.hooks.example/x")
    with pytest.raises(EgressRefused, match="not in this tenant's list"):
        narrow.check_url("https://evil.com/")


@pytest.mark.parametrize("text", ["", "a b", "10.0.0.0/8:x", "[::1", "host:99999"])
def test_bad_patterns_are_refused(text):
    with pytest.raises(ValueError):
        Pattern.parse(text)


def test_the_policy_crosses_the_worker_pipe_unchanged():
    policy = EgressPolicy.from_text(
        allow="127.0.0.1:*,[::1]:8443", deny="*.internal", max_requests=3
    )

    assert EgressPolicy.from_meta(json.loads(json.dumps(policy.to_meta()))) == policy


def test_log_urls_lose_their_secrets():
    assert redact_url("https://u:p@h.test/a?token=abc&q=1&sig=zz&x=" + "A" * 30) == (
        "https://h.test/a?token=[redacted]&q=1&sig=[redacted]&x=[redacted]"
    )


def test_url_and_search_params_read_urls_as_node_does(isolation):
    world = World(
        "urls",
        action(
            "const u = new URL('/a/../b?x=1&y=2#h', 'https://User@EXAMPLE.com:443/p/');\n"
            "u.searchParams.append('z', 'a b');\n"
            "u.pathname = '/c d';\n"
            "const p = new URLSearchParams({q: 'é', r: '~'}); p.sort();\n"
            "let bad = ''; try { new URL('nope'); } catch (e) { bad = e.name; }\n"
            "api.accessToken.setCustomClaim('https://x.test/u', [u.href, u.host, u.origin,\n"
            "  u.searchParams.get('y'), p.toString(), bad, new URL('http://0x7f000001/').hostname,\n"
            "  typeof __tessera_url, new TextDecoder().decode(new TextEncoder().encode('ü€😀'))]);"
        ),
    )

    assert world.claims()["https://x.test/u"] == [
        "https://User@example.com/c%20d?x=1&y=2&z=a+b#h",
        "example.com",
        "https://example.com",
        "2",
        "q=%C3%A9&r=%7E",
        "TypeError",
        "127.0.0.1",
        "undefined",
        "ü€😀",
    ]


class Proxy(BaseHTTPRequestHandler):
    """An HTTP proxy that answers for every host itself, and remembers what
    it was asked (absolute URIs, as a client speaks to a proxy)."""

    seen: list[str] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        Proxy.seen.append(self.path)
        body = json.dumps({"via": "proxy", "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_the_operators_proxy_carries_every_hook_request(settings):
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    Proxy.seen = []
    settings.TESSERA_EGRESS_PROXY = f"http://127.0.0.1:{proxy.server_address[1]}"
    try:
        world = World(
            "proxied",
            action(
                "const r = await fetch('http://api.partner.test/tier?x=1');\n"
                "api.accessToken.setCustomClaim('https://x.test/r', await r.json());"
            ),
        )

        answer = world.claims()["https://x.test/r"]
    finally:
        proxy.shutdown()
        proxy.server_close()

    assert answer == {"via": "proxy", "path": "http://api.partner.test/tier?x=1"}
    assert Proxy.seen == ["http://api.partner.test/tier?x=1"]


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("GET", [("X-A", "a\r\nHost: internal.example")]),
        ("GET", [("X-A", "a\nX-B: 1")]),
        ("GET", [("X A", "1")]),
        ("GET", [("X-A:", "1")]),
        ("GE T", []),
        ("GET /admin HTTP/1.1\r\nX:", []),
    ],
)
def test_the_host_refuses_what_would_break_the_request_whatever_the_sandbox_did(method, headers):
    policy = EgressPolicy.from_text(allow=LOOPBACK)
    request = FetchRequest(method=method, url="http://127.0.0.1:9/", headers=headers)

    with pytest.raises(EgressRefused, match="invalid"):
        perform(request, policy, time.monotonic() + 1)


def test_a_fetch_lets_its_run_go_only_while_it_waits_on_the_network(upstream, monkeypatch):
    """``waiting()`` (where the governor lets the compute gate go) is entered
    for the name's lookup and for the network, and left before the answer is
    read: each call curl makes into Python (a chunk of the body) without the
    gate would wait on the GIL of the run now computing."""
    state = {"waiting": False, "waits": 0}
    seen: list[tuple[str, bool]] = []

    @contextlib.contextmanager
    def waiting():
        state["waiting"], state["waits"] = True, state["waits"] + 1
        try:
            yield
        finally:
            state["waiting"] = False

    def resolver(host, port):
        seen.append(("lookup", bool(state["waiting"])))
        return ["127.0.0.1"]

    write = egress._Received.write

    def reading(self, chunk):
        seen.append(("body", bool(state["waiting"])))
        return write(self, chunk)

    monkeypatch.setattr(egress._Received, "write", reading)
    port = urlsplit(upstream).port
    policy = EgressPolicy.from_text(allow=LOOPBACK, owner="waits", resolver=resolver)
    request = FetchRequest("GET", f"http://partner.test:{port}/tier", [])

    answers = [perform(request, policy, time.monotonic() + 5, waiting) for _ in range(2)]

    assert [json.loads(answer.body) for answer in answers] == [
        {"tier": "gold", "host": f"partner.test:{port}"}
    ] * 2
    assert ("lookup", True) in seen and ("lookup", False) not in seen
    assert ("body", True) not in seen and ("body", False) in seen
    assert state["waits"] >= 2  # each fetch's lookup, and any wait for its answer
    egress.close_idle_connections()
