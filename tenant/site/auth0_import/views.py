"""The dashboard's import page (``/admin/t/<slug>/import/``): the same import
as ``manage.py auth0 import``, for a tenant's administrators. The source is a
Management API (URL and client credentials) or an uploaded Deploy CLI export
(a YAML file, or the export directory as a .zip); "Dry run" shows the plan,
"Import" carries it out. Secrets Tessera makes are shown once, on the
result page."""

import json
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

from django import forms
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.views.decorators.debug import sensitive_post_parameters

from hooks.runtime.egress import EgressPolicy, EgressRefused
from tenant.audit import Actor
from tenant.models import Tenant
from tenant.site.auth0_import.deploy_cli import read_deploy_cli
from tenant.site.auth0_import.export import KINDS, Export, ImportRefused
from tenant.site.auth0_import.handover import service_changes
from tenant.site.auth0_import.management_api import base_url, read_management_api
from tenant.site.auth0_import.plan import make_plan
from tenant.site.auth0_import.services import auth0_import

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_UNPACKED_BYTES = 100 * 1024 * 1024


class ImportForm(forms.Form):
    source_url = forms.CharField(
        required=False,
        label="Management API",
        help_text="An Auth0 domain (acme.eu.auth0.com) or another Tessera tenant's issuer.",
    )
    client_id = forms.CharField(required=False, label="Client ID")
    client_secret = forms.CharField(
        required=False, label="Client secret", widget=forms.PasswordInput(render_value=True)
    )
    export = forms.FileField(
        required=False,
        label="Or a Deploy CLI export",
        help_text="tenant.yaml, or the export directory as a .zip (at most 20 MB).",
    )
    only = forms.MultipleChoiceField(
        choices=[(kind, kind.replace("_", " ")) for kind in KINDS],
        initial=list(KINDS),
        widget=forms.CheckboxSelectMultiple,
        label="What to import",
    )
    hook_secrets = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text='JSON: {"<hook>": {"<secret>": "<value>"}}',
    )
    action_secrets = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text='JSON: {"<action>": {"<secret>": "<value>"}}',
    )
    keywords = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text='JSON: {"KEY": value}, for ##KEY## and @@KEY@@ in the export.',
    )
    overwrite = forms.BooleanField(
        required=False, help_text="Update objects here that differ from the source."
    )

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if bool(data.get("source_url")) == bool(data.get("export")):
            raise forms.ValidationError("Give either a Management API or an export file.")
        upload = data.get("export")
        if upload is not None and upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError("The export file is larger than 20 MB.")
        for name in ("hook_secrets", "action_secrets", "keywords"):
            data[name] = _json_object(data.get(name) or "", name.replace("_", " "))
        return data


def _json_object(value: str, what: str) -> dict[str, Any]:
    if not value.strip():
        return {}
    try:
        body = json.loads(value)
    except ValueError as error:
        raise forms.ValidationError(f"The {what} are not JSON: {error}") from None
    if not isinstance(body, dict):
        raise forms.ValidationError(f"The {what} must be a JSON object.")
    return body


def _unpack(upload: Any, folder: Path) -> Path:
    """The uploaded export on disk: a YAML file as is, a zip unpacked (no
    member may land outside ``folder``, nor the whole exceed the limit)."""
    name = Path(upload.name or "export").name
    target = folder / name
    with target.open("wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    if not zipfile.is_zipfile(target):
        return target
    root = folder / "export"
    try:
        with zipfile.ZipFile(target) as archive:
            if sum(member.file_size for member in archive.infolist()) > MAX_UNPACKED_BYTES:
                raise ImportRefused("The unpacked export is larger than 100 MB.")
            for member in archive.infolist():
                destination = (root / member.filename).resolve()
                if not destination.is_relative_to(root.resolve()):
                    raise ImportRefused(f"Malformed export: {member.filename} leaves the archive.")
            # Every member's path was checked above; a member is never
            # inflated past the size its header declares (zipfile stops
            # there, and a CRC that does not match is BadZipFile).
            archive.extractall(root)
    # NotImplementedError: a compression method zipfile cannot inflate.
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as error:
        raise ImportRefused(f"Malformed export: the zip cannot be unpacked: {error}") from None
    entries = [p for p in root.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    # A zip of the folder itself holds one folder: the export is inside it.
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else root


def check_reachable(source: str) -> str:
    """The address to connect to for a tenant administrator's source, which
    must be one a hook could fetch: the operator's egress lists
    (``TESSERA_EGRESS_ALLOW``/``_DENY``), and else public addresses only, so
    that the page cannot probe the servers' private network. The import
    connects to this address only (the name is not resolved again).
    (``manage.py`` is the operator's, and is not limited.)"""
    policy = EgressPolicy.from_text(
        allow=settings.TESSERA_EGRESS_ALLOW, deny=settings.TESSERA_EGRESS_DENY
    )
    try:
        target = policy.check_url(base_url(source))
        return policy.connect_address(target.host, target.port)
    except EgressRefused as error:
        raise ImportRefused(f"The source cannot be reached from here: {error}") from None


def _read(data: dict[str, Any], folder: Path) -> Export:
    only = tuple(data["only"])
    if data.get("export"):
        path = _unpack(data["export"], folder)
        return read_deploy_cli(path, keywords=data["keywords"], only=only)
    address = check_reachable(data["source_url"])
    return read_management_api(
        data["source_url"],
        client_id=data["client_id"],
        client_secret=data["client_secret"],
        only=only,
        connect_to=address,
    )


# What an error report (a 500's log or mail) must not show of a post.
SENSITIVE_FIELDS = ("client_secret", "hook_secrets", "action_secrets", "keywords")


@sensitive_post_parameters(*SENSITIVE_FIELDS)
def tenant_import(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    """GET: the form. POST with ``dry_run``: the plan. POST with ``import``:
    the import, then what was done and what each service must change."""
    if request.method not in ("GET", "POST"):
        raise Http404
    context: dict[str, Any] = {"tenant": tenant, "title": f"Import into {tenant.name}"}
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            with tempfile.TemporaryDirectory(prefix="tessera-import-") as folder:
                export = _read(data, Path(folder))
            plan = make_plan(
                tenant=tenant,
                export=export,
                hook_secrets_given=data["hook_secrets"],
                action_secrets_given=data["action_secrets"],
                overwrite=data["overwrite"],
            )
            context["plan"] = plan
            if "import" in request.POST and plan.writes:
                result = auth0_import(plan=plan, actor=Actor.for_user(request.user))
                context["result"] = result
                context["new_secrets"] = sorted(result.new_secrets.items())
                context["new_signing_secrets"] = sorted(result.new_signing_secrets.items())
                context["handover"] = service_changes(plan, result)
            elif "import" in request.POST:
                context["nothing_to_do"] = True
        except ImportRefused as error:
            context["refused"] = str(error)
    context["form"] = form
    return TemplateResponse(request, "admin/auth0_import.html", context)
