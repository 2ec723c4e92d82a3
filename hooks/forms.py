"""Dashboard forms for hooks: the script editor, secrets and the Run payload."""

import json
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django_ace import AceWidget

from hooks.choices import HookKind
from hooks.dependencies import packages_for, parse_declared
from hooks.execution import check_script
from hooks.models import Hook, validate_secret_name
from hooks.points import POINTS

# Payloads are small JSON objects; anything larger is a mistake.
MAX_PAYLOAD_BYTES = 65_536


def ace_editor(*, mode: str, height: str, fontsize: str) -> AceWidget:
    return AceWidget(
        mode=mode,
        theme="tomorrow",
        showgutter=True,
        showprintmargin=False,
        tabsize=2,
        fontsize=fontsize,
        width="100%",
        height=height,
        toolbar=False,
        useworker=False,
        # Long lines wrap: at 1280 px the editors are ~500 and ~330 px wide,
        # and a cut-off line hides what it says (the script's first line).
        wordwrap=True,
    )


def script_editor() -> AceWidget:
    return ace_editor(mode="javascript", height="520px", fontsize="14px")


def payload_editor() -> AceWidget:
    return ace_editor(mode="json", height="320px", fontsize="13px")


class HookAddForm(forms.ModelForm):
    """A new hook, prefilled with the point's starter script for the kind the
    admin picks: an Auth0 Hook or an Auth0 Action (``?kind=action`` preselects
    it; the page swaps the starter while the text is untouched). What is saved
    is whatever the script exports. The first hook of a point is enabled (the
    dashboard's rule, applied by ``hook_create``)."""

    kind = forms.ChoiceField(
        label="Format",
        choices=HookKind.choices,
        initial=HookKind.HOOK,
        required=False,  # only picks the starter code
        help_text="Start from Auth0's Hook (module.exports = function…) or Action "
        "(exports.onExecuteCredentialsExchange) starter code.",
    )

    class Meta:
        model = Hook
        fields = ["tenant", "name", "trigger_id", "script"]
        widgets = {"script": script_editor()}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        point = next(iter(POINTS.values()))
        kind = self.initial.get("kind")
        kind = kind if kind in HookKind.values else HookKind.HOOK
        self.fields["trigger_id"].initial = point.trigger_id
        self.fields["kind"].initial = kind
        self.fields["kind"].widget.attrs["data-starters"] = json.dumps(
            {value: point.starter_for(value) for value in HookKind.values}
        )
        self.fields["script"].initial = point.starter_for(kind)

    def clean_script(self) -> str:
        # A form post sends a textarea's newlines as CRLF (HTML's rule); the
        # script is stored as it was typed.
        return str(self.cleaned_data["script"]).replace("\r\n", "\n")

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        tenant, script = data.get("tenant"), data.get("script")
        if tenant is not None and script is not None:
            try:
                check_script(tenant=tenant, script=script)
            except ValidationError as error:
                self.add_error("script", error)
        return data


class HookScriptForm(forms.ModelForm):
    """The script of an existing hook, edited from ``base_version``."""

    base_version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)

    class Meta:
        model = Hook
        fields = ["script"]
        widgets = {"script": script_editor()}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["base_version"].initial = self.instance.version

    @property
    def media(self) -> forms.Media:
        # The hook page also shows the Run panel's JSON payload editor, which is
        # not a field of this form: its ace mode must load with the page.
        return super().media + payload_editor().media

    def clean(self) -> dict[str, Any]:
        # Authoritative checks happen again in hook_save_script; these give
        # the form its errors while the user's text is still in the editor.
        data: dict[str, Any] = super().clean() or {}
        script, base_version = data.get("script"), data.get("base_version")
        if base_version is not None and base_version != self.instance.version:
            raise ValidationError(
                "This hook was changed by someone else since you opened it (now version "
                f"{self.instance.version}). Your text is kept in the editor: copy it, reload "
                "the page, and apply your change again.",
                code="conflict",
            )
        if script is not None and "script" in self.changed_data:
            try:
                check_script(
                    tenant=self.instance.tenant,
                    script=script,
                    packages=packages_for(self.instance.dependency_lock),
                )
            except ValidationError as error:
                self.add_error("script", error)
        return data


class HookSecretForm(forms.Form):
    """Add or replace one secret; the value is write-only."""

    name = forms.CharField(max_length=255, validators=[validate_secret_name])
    value = forms.CharField(
        max_length=10_000, strip=False, widget=forms.PasswordInput(render_value=False)
    )


class HookDependenciesForm(forms.Form):
    """The hook's npm dependencies, one ``name@version`` a line (resolved
    when saved, by ``hook_update``)."""

    dependencies = forms.CharField(
        required=False,
        max_length=10_000,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 40, "spellcheck": "false"}),
        help_text="One npm package a line, name@version (a version or a range).",
    )

    @staticmethod
    def text_of(hook: Hook) -> str:
        return "\n".join(f"{name}@{version}" for name, version in hook.dependencies.items())

    def clean_dependencies(self) -> dict[str, str]:
        return parse_declared(str(self.cleaned_data["dependencies"]).splitlines())


class RunRequestForm(forms.Form):
    """What the Run button posts: the unsaved script and the JSON payload."""

    script = forms.CharField(strip=False)
    payload = forms.CharField(strip=False, max_length=MAX_PAYLOAD_BYTES)

    def clean_script(self) -> str:
        script: str = self.cleaned_data["script"]
        if len(script.encode()) > settings.TESSERA_HOOK_MAX_SCRIPT_BYTES:
            raise ValidationError(
                f"The script exceeds {settings.TESSERA_HOOK_MAX_SCRIPT_BYTES} bytes."
            )
        return script

    def clean_payload(self) -> Any:
        try:
            payload = json.loads(self.cleaned_data["payload"])
        except json.JSONDecodeError as error:
            raise ValidationError(
                f"The payload is not valid JSON: {error.msg} (line {error.lineno}, "
                f"column {error.colno})."
            ) from None
        if not isinstance(payload, dict):
            raise ValidationError("The payload must be a JSON object.")
        return payload
