"""Dashboard forms for Actions: the new Action, the draft's code editor,
its runtime and dependencies, and the Flow page's binding changes."""

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.http import QueryDict

from hooks.choices import ActionRuntime, TriggerId
from hooks.forms import payload_editor, script_editor
from hooks.models import MAX_DEPENDENCIES_PER_ACTION, Action
from hooks.points import POINTS

# Blank rows the dependencies form offers for new entries.
NEW_DEPENDENCY_ROWS = 2


class ActionAddForm(forms.ModelForm):
    """A new Action, starting from the trigger's starter code; what is
    saved is built (``built`` or ``failed``), never refused for its code."""

    class Meta:
        model = Action
        fields = ["tenant", "name", "trigger_id", "runtime", "code"]
        widgets = {"code": script_editor()}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["trigger_id"].initial = TriggerId.CREDENTIALS_EXCHANGE
        self.fields["trigger_id"].label = "Trigger"
        self.fields["code"].initial = POINTS[TriggerId.CREDENTIALS_EXCHANGE].action_starter_script

    def clean_code(self) -> str:
        # A form post sends a textarea's newlines as CRLF (HTML's rule).
        return str(self.cleaned_data["code"]).replace("\r\n", "\n")


class ActionCodeForm(forms.ModelForm):
    """The draft's code, edited from ``base_version`` (the draft's revision).
    The page saves through its own endpoint; this form renders the editor."""

    base_version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)

    class Meta:
        model = Action
        fields = ["code"]
        widgets = {"code": script_editor()}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["base_version"].initial = self.instance.revision

    @property
    def media(self) -> forms.Media:
        # The Run panel's JSON payload editor is not a field of this form.
        return super().media + payload_editor().media

    def clean_code(self) -> str:
        return str(self.cleaned_data["code"]).replace("\r\n", "\n")

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        base = data.get("base_version")
        if base is not None and base != self.instance.revision:
            raise ValidationError(stale_draft_message(self.instance), code="conflict")
        return data


def stale_draft_message(action: Action) -> str:
    return (
        f"This action was changed by someone else since you opened it (now revision "
        f"{action.revision}). Your text is kept in the editor: copy it, reload the page, "
        "and apply your change again."
    )


class ActionSettingsForm(forms.Form):
    """The draft's runtime label and dependencies ``[{name, version}]``,
    posted as parallel ``dep_name`` / ``dep_version`` lists (a row with a
    blank name is left out: that is how a dependency is removed)."""

    runtime = forms.ChoiceField(choices=ActionRuntime.choices)
    base_version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)

    def __init__(self, data: QueryDict | None = None, **kwargs: Any) -> None:
        super().__init__(data, **kwargs)
        self.dependencies: list[dict[str, str]] = []
        if data is None:
            return
        names, versions = data.getlist("dep_name"), data.getlist("dep_version")
        if len(names) != len(versions) or len(names) > 100:
            self._dependency_error = "The dependency rows are malformed."
            return
        self._dependency_error = ""
        for name, version in zip(names, versions, strict=True):
            name, version = name.strip(), version.strip()
            if name:
                self.dependencies.append({"name": name, "version": version or "latest"})

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        if getattr(self, "_dependency_error", ""):
            raise ValidationError(self._dependency_error)
        names = [d["name"] for d in self.dependencies]
        if len(set(names)) != len(names):
            raise ValidationError("Each dependency is listed once.")
        if len(names) > MAX_DEPENDENCIES_PER_ACTION:
            raise ValidationError(
                f"An action has at most {MAX_DEPENDENCIES_PER_ACTION} dependencies."
            )
        for dependency in self.dependencies:
            if len(dependency["name"]) > 214 or len(dependency["version"]) > 100:
                raise ValidationError("A dependency's name or version is too long.")
        return data


class FlowChangeForm(forms.Form):
    """One change to a trigger's flow, from the Flow page: ``op`` on
    ``action`` (a public id), made to the flow as the page showed it
    (``based_on``: the bound Actions' ids in order, comma-separated)."""

    OPS = [("add", "Bind"), ("up", "Move up"), ("down", "Move down"), ("remove", "Unbind")]

    op = forms.ChoiceField(choices=OPS)
    action = forms.CharField(max_length=40)
    based_on = forms.CharField(required=False, max_length=2000)

    def based_on_ids(self) -> list[str]:
        text = self.cleaned_data.get("based_on") or ""
        return [item for item in text.split(",") if item]
