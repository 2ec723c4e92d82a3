"""``manage.py actions deploy|rollback|bind|unbind`` go live judged on the
tenant's recorded requests and clients: a change that breaks a client that
calls today is refused with one line naming it (exit 1, nothing changed)
unless ``--force``; a change that fails only on the sample event goes live
without one. The clients call over real HTTP first (a live server), and a
second tenant calls side by side: its traffic never judges the first's
change, and its flow never changes."""

from pathlib import Path

import pytest

from hooks.models import ActionVersion
from tests.hooks.actions_cli import actions, refused
from tests.hooks.go_live import (
    BREAKS_BILLING,
    CLAIM,
    FROM_PROFILE,
    NEEDS_THE_TAG,
    PLAN,
    Calling,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sides(live_server, settings) -> tuple[Calling, Calling]:  # type: ignore[no-untyped-def]
    settings.PUBLIC_URL = live_server.url
    return Calling("acme"), Calling("globex")


def file_with(tmp_path: Path, code: str) -> str:
    path = tmp_path / "action.js"
    path.write_text(code)
    return str(path)


def test_deploy_of_a_draft_that_breaks_a_calling_client_is_refused_naming_it_unless_forced(
    sides, tmp_path
):
    acme, globex = sides
    actions("update", "tag", "-p", "acme", file_with(tmp_path, BREAKS_BILLING))
    message = refused("deploy", "tag", "-p", "acme")
    assert f"billing ({acme.client_id('billing')})" in message
    assert "orders" not in message and globex.client_id("billing") not in message
    assert "1 recorded request would fail" in message
    assert "no billing (line 2" in message
    assert message.endswith("Nothing was changed; rerun with --force to go live anyway.")
    assert ActionVersion.objects.filter(action=acme.action).count() == 1
    assert acme.claims("billing")[CLAIM] == 1

    assert actions("deploy", "tag", "-p", "acme", "--force") == "Deployed action tag version 2\n"
    assert acme.token("billing").status_code != 200
    assert acme.claims("orders")[CLAIM] == 2
    assert globex.claims("billing")[CLAIM] == 1


def test_rollback_to_a_breaking_version_is_refused_unless_forced_and_a_fix_is_not(sides, tmp_path):
    acme, globex = sides
    actions("update", "tag", "-p", "acme", file_with(tmp_path, BREAKS_BILLING))
    actions("deploy", "tag", "-p", "acme", "--force")
    # Back to version 1 fixes billing: nothing to confirm.
    assert "version 3 (the code of version 1)" in actions("rollback", "tag", "1", "-p", "acme")
    assert acme.claims("billing")[CLAIM] == 1
    message = refused("rollback", "tag", "2", "-p", "acme")
    assert f"billing ({acme.client_id('billing')})" in message and "--force" in message
    assert acme.action.versions.get(deployed=True).number == 3
    assert "version 4 (the code of version 2)" in actions(
        "rollback", "tag", "2", "-p", "acme", "--force"
    )
    assert acme.token("billing").status_code != 200
    assert globex.claims("billing")[CLAIM] == 1


def test_bind_and_unbind_that_break_a_calling_client_are_refused_unless_forced(sides):
    acme, globex = sides
    acme.deployed("strict", BREAKS_BILLING)  # not bound: deploying it runs nothing
    message = refused("bind", "strict", "-p", "acme")
    assert message.startswith("The new credentials-exchange flow would fail for 1 client(s)")
    assert f"billing ({acme.client_id('billing')})" in message and "--force" in message
    assert "strict" not in actions("flow", "-p", "acme")
    assert "Bound action strict" in actions("bind", "strict", "-p", "acme", "--force")
    assert acme.token("billing").status_code != 200
    # Unbinding it fixes billing: nothing to confirm.
    assert actions("unbind", "strict", "-p", "acme") == (
        "Unbound action strict from credentials-exchange\n"
    )
    assert acme.claims("billing")[CLAIM] == 1

    acme.deployed("guard", NEEDS_THE_TAG)
    actions("bind", "guard", "-p", "acme")  # after tag, billing has its claim
    message = refused("unbind", "tag", "-p", "acme")
    assert f"billing ({acme.client_id('billing')})" in message
    assert "billing needs the tag" in message
    assert acme.claims("billing")[CLAIM] == 1
    actions("unbind", "tag", "-p", "acme", "--force")
    assert acme.token("billing").status_code != 200
    assert acme.claims("orders").get(CLAIM) is None
    assert globex.claims("billing")[CLAIM] == 1


def test_an_action_that_fails_only_on_the_sample_goes_live_without_force(sides, tmp_path):
    acme, globex = sides
    acme.deployed("plan", FROM_PROFILE)
    assert "Bound action plan" in actions("bind", "plan", "-p", "acme")
    assert acme.claims("orders")[PLAN] == "gold"
    assert acme.claims("billing")[PLAN] == "free"
    actions("update", "tag", "-p", "acme", file_with(tmp_path, FROM_PROFILE.replace(PLAN, CLAIM)))
    assert "SyntaxError" in refused("test", "tag", "-p", "acme")  # the sample has no profile
    assert actions("deploy", "tag", "-p", "acme") == "Deployed action tag version 2\n"
    assert acme.claims("billing")[CLAIM] == "free"
    assert PLAN not in globex.claims("billing")
