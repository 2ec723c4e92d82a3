"""The dashboard's import page (/admin/t/<slug>/import/): a tenant's
administrator uploads a Deploy CLI export, sees the dry run's plan, then
imports; another tenant's administrator cannot reach the page."""

import io
import zipfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client as HttpClient
from django.urls import reverse

from clients.models import Client
from tenant.models import AuditEntry
from tests.dashboard.browser import BROWSER_MARKS, log_in
from tests.dashboard.conftest import TenantWorld, make_world
from tests.tenant.test_auth0_import import client_body, write_export


def zipped(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, Path(folder.name) / path.relative_to(folder))
    return buffer.getvalue()


def form(export: bytes, **extra: str) -> dict[str, object]:
    return {
        "export": SimpleUploadedFile("export.zip", export, content_type="application/zip"),
        "only": ["resource_servers", "clients", "client_grants", "hooks", "actions"],
        "hook_secrets": '{"plan-claim": {"SALT": "pepper"}}',
        "action_secrets": '{"tier": {"TIER": "tier-1"}}',
        **extra,
    }


@pytest.mark.django_db
def test_an_administrator_dry_runs_then_imports_an_uploaded_export(
    world_a: TenantWorld, world_b: TenantWorld, tmp_path
):
    plain = {k: v for k, v in client_body(2).items() if k != "client_secret"}
    export = zipped(write_export(tmp_path / "export", {"clients/Worker 2.json": plain}))
    http = HttpClient()
    http.force_login(world_a.admin)
    url = reverse("admin:tenant_import", args=[world_a.tenant.slug])

    dry = http.post(url, form(export, dry_run="Dry run"))
    assert dry.status_code == 200
    text = dry.content.decode()
    assert "Plan (dry run: nothing written)" in text and "Worker 1" in text
    assert "client Dashboard (spa)" in text  # listed, not imported
    assert not Client.objects.filter(client_id=client_body(1)["client_id"]).exists()

    done = http.post(url, form(export, **{"import": "Import"}))
    text = done.content.decode()
    assert "What each service must change:" in text
    worker = Client.objects.get(tenant=world_a.tenant, client_id=client_body(1)["client_id"])
    assert worker.metadata == {"plan": "gold"}
    # The client whose secret the export kept gets one, shown once on this page.
    assert plain["client_id"] in text.split('id="import-secrets"')[1]
    entry = AuditEntry.objects.filter(tenant=world_a.tenant, object_type="client").latest("id")
    assert (entry.source, entry.actor_name) == (AuditEntry.Source.IMPORT, "alpha-admin")
    assert not Client.objects.filter(tenant=world_b.tenant).exclude(pk=world_b.client.pk).exists()


@pytest.mark.django_db
def test_another_tenants_administrator_gets_a_404_and_writes_nothing(
    world_a: TenantWorld, world_b: TenantWorld, tmp_path
):
    export = zipped(write_export(tmp_path / "export"))
    http = HttpClient()
    http.force_login(world_b.admin)
    url = reverse("admin:tenant_import", args=[world_a.tenant.slug])
    assert http.get(url).status_code == 404
    assert http.post(url, form(export, **{"import": "Import"})).status_code == 404
    assert not Client.objects.filter(client_id=client_body(1)["client_id"]).exists()


@pytest.mark.django_db
def test_a_malformed_upload_is_one_line_and_writes_nothing(world_a: TenantWorld, tmp_path):
    broken = write_export(tmp_path / "export", {"clients/Worker 1.json": "{oops"})
    http = HttpClient()
    http.force_login(world_a.admin)
    url = reverse("admin:tenant_import", args=[world_a.tenant.slug])
    response = http.post(url, form(zipped(broken), **{"import": "Import"}))
    text = response.content.decode()
    assert 'id="import-refused"' in text and "Malformed export: clients/Worker 1.json" in text
    assert not Client.objects.filter(client_id=client_body(2)["client_id"]).exists()


def test_the_import_page_in_a_browser(page, live_server, world, tmp_path):
    other = make_world("bravo")
    upload = tmp_path / "export.zip"
    upload.write_bytes(zipped(write_export(tmp_path / "export")))
    log_in(page, live_server, "alpha-admin")
    page.goto(f"{live_server.url}/admin/t/alpha/")
    page.click("#tenant-import")
    page.set_input_files("#id_export", str(upload))
    page.fill("#id_hook_secrets", '{"plan-claim": {"SALT": "pepper"}}')
    page.fill("#id_action_secrets", '{"tier": {"TIER": "tier-1"}}')
    page.click("input[name=dry_run]")
    page.wait_for_selector("#import-plan")
    assert page.locator("#import-plan tr.import-create").count() >= 5
    page.set_input_files("#id_export", str(upload))  # a file input does not survive a post
    page.click("input[name=import]")
    page.wait_for_selector("#import-result")
    assert "token endpoint:" in page.inner_text("#import-result")
    assert Client.objects.filter(tenant=world.tenant, name="Worker 1").exists()
    assert not Client.objects.filter(tenant=other.tenant, name="Worker 1").exists()


for _mark in BROWSER_MARKS:  # the browser suite's marks, on this one test
    test_the_import_page_in_a_browser = _mark(test_the_import_page_in_a_browser)


@pytest.mark.django_db
def test_the_page_cannot_reach_a_private_address(world_a: TenantWorld):
    http = HttpClient()
    http.force_login(world_a.admin)
    url = reverse("admin:tenant_import", args=[world_a.tenant.slug])
    response = http.post(
        url,
        {
            "source_url": "http://127.0.0.1:5432/",
            "client_id": "x",
            "client_secret": "y",
            "only": ["clients"],
            "dry_run": "Dry run",
        },
    )
    text = response.content.decode()
    assert "The source cannot be reached from here" in text
    assert "not a public address" in text
