"""require() in hooks: Node's everyday built-ins from pinned npm packages
(crypto done by the host), webtask's request module over fetch, and clear
errors for what hooks may not have; real scripts of these shapes, through
the real token endpoint, in both isolation modes."""

import hashlib
import hmac
import json

import pytest

from tests.hooks.network import LOOPBACK, World, action

pytestmark = pytest.mark.django_db


def test_an_action_signs_its_webhook_with_hmac_and_aborts_on_timeout(isolation, settings, upstream):
    """The shape of a real Action: POST the client to the team's API with an
    HMAC signature (crypto.createHmac) and AbortSignal.timeout."""
    settings.TESSERA_EGRESS_ALLOW = LOOPBACK
    world = World(
        "signer",
        "const crypto = require('node:crypto');\n"
        + action(
            "const body = JSON.stringify({client_id: event.client.client_id});\n"
            "const signature = crypto.createHmac('sha256', 'whsec').update(body).digest('hex');\n"
            f"const r = await fetch('{upstream}/echo', {{method: 'POST', body,\n"
            "  headers: {'content-type': 'application/json', 'x-signature': signature},\n"
            "  signal: AbortSignal.timeout(2000)});\n"
            "const echo = await r.json();\n"
            "api.accessToken.setCustomClaim('https://x.test/sig', echo.headers['x-signature']);\n"
            "api.accessToken.setCustomClaim('https://x.test/body', echo.body);"
        ),
    )

    token = world.claims()

    body = json.dumps({"client_id": world.client.client_id}, separators=(",", ":"))
    assert token["https://x.test/body"] == body
    assert token["https://x.test/sig"] == hmac.new(b"whsec", body.encode(), "sha256").hexdigest()


LEGACY_HOOK = """const request = require('request');
const util = require('util');
const post = util.promisify(request.post);

module.exports = async function (client, scope, audience, context, cb) {
  try {
    const response = await post({
      url: '%s/echo',
      json: { query: '{ tier(client: "' + client.id + '") }' },
      headers: { authorization: 'Bearer ' + context.webtask.secrets.API_TOKEN },
      timeout: 2000,
    });
    const access_token = {};
    access_token['https://x.test/status'] = response.statusCode;
    access_token['https://x.test/echo'] = response.body;
    access_token.scope = scope;
    cb(null, access_token);
  } catch (error) {
    cb(error);
  }
};"""


def test_a_legacy_hook_calls_graphql_with_request_and_promisify(isolation, settings, upstream):
    settings.TESSERA_EGRESS_ALLOW = LOOPBACK
    world = World("legacy", LEGACY_HOOK % upstream)
    from hooks.services import hook_secrets_set
    from tenant.audit import Actor

    hook_secrets_set(hook=world.hook, secrets={"API_TOKEN": "tok"}, actor=Actor.cli())

    token = world.claims()

    echo = token["https://x.test/echo"]
    assert token["https://x.test/status"] == 200
    assert echo["method"] == "POST"
    assert json.loads(echo["body"]) == {"query": f'{{ tier(client: "{world.client.client_id}") }}'}
    assert echo["headers"]["authorization"] == "Bearer tok"
    assert echo["headers"]["content-type"] == "application/json"


def test_request_reports_a_refused_address_as_its_error(settings):
    world = World(
        "refused",
        "const request = require('request');\n"
        "module.exports = function (client, scope, audience, context, cb) {\n"
        "  request.get('http://169.254.169.254/latest/meta-data/', (error) => {\n"
        "    cb(null, {'https://x.test/error': error && error.message});\n"
        "  });\n};",
    )

    assert "not a public address" in world.claims()["https://x.test/error"]


def test_node_built_ins_answer_as_node_does(isolation):
    world = World(
        "builtins",
        action(
            "const crypto = require('crypto'), util = require('util'), path = require('path');\n"
            "const qs = require('querystring'), { StringDecoder } = require('string_decoder');\n"
            "const { EventEmitter } = require('events'), assert = require('node:assert');\n"
            "const url = require('url');\n"
            "const e = new EventEmitter(); let got; e.on('x', (v) => { got = v; }); e.emit('x', 7);\n"
            "let failed = ''; try { assert.deepStrictEqual({a: 1}, {a: 2}); }"
            " catch (err) { failed = err.name; }\n"
            "api.accessToken.setCustomClaim('https://x.test/out', [\n"
            "  crypto.createHash('sha256').update('abc').digest('hex'),\n"
            "  crypto.createHmac('sha1', Buffer.from('k')).update('a').update('b').digest('base64'),\n"
            "  crypto.randomBytes(16).length, crypto.randomUUID().length,\n"
            "  crypto.timingSafeEqual(Buffer.from('ab'), Buffer.from('ab')),\n"
            "  util.format('%s:%d:%j', 'a', 5, {b: 1}), util.inspect({a: [1, 2]}),\n"
            "  path.join('/a', '../b', 'c.js'), path.extname('x.tar.gz'),\n"
            "  qs.stringify({a: [1, 2], b: 'x y'}), qs.parse('a=1&b=2').b,\n"
            "  new StringDecoder('utf8').write(Buffer.from('héllo')), got, failed,\n"
            "  url.parse('http://x.com:81/p?q=1').port, new url.URL('http://h/a').pathname,\n"
            "  Buffer.from('hi').toString('base64'), typeof util.promisify,\n"
            "]);"
        ),
    )

    assert world.claims()["https://x.test/out"] == [
        hashlib.sha256(b"abc").hexdigest(),
        "ix7Xzz4IVJqOJi1Z99KqNkqFd/c=",  # node: createHmac("sha1", "k") a, b
        16,
        36,
        True,
        'a:5:{"b":1}',
        "{ a: [ 1, 2 ] }",
        "/b/c.js",
        ".gz",
        "a=1&a=2&b=x%20y",
        "2",
        "héllo",
        7,
        "AssertionError",
        "81",
        "/a",
        "aGk=",
        "function",
    ]


@pytest.mark.parametrize("name", ["fs", "child_process", "net", "node:os", "http", "vm"])
def test_what_hooks_may_not_have_fails_with_the_modules_name(name):
    world = World(
        "absent",
        action(
            f"try {{ require('{name}'); }} catch (e) {{\n"
            "  api.accessToken.setCustomClaim('https://x.test/error', e.message); }"
        ),
    )

    error = world.claims()["https://x.test/error"]
    assert f"'{name}' is not available in hooks" in error


def test_an_undeclared_package_is_not_found():
    world = World(
        "undeclared",
        action(
            "try { require('left-pad'); } catch (e) {\n"
            "  api.accessToken.setCustomClaim('https://x.test/error', [e.code, e.message]); }"
        ),
    )

    assert world.claims()["https://x.test/error"] == [
        "MODULE_NOT_FOUND",
        "Cannot find module 'left-pad'",
    ]
