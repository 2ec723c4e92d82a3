"""Forms of the site's own dashboard pages."""

from typing import Any

from django import forms

ANY = [("", "any")]


class AuditFilterForm(forms.Form):
    """The audit page's filters: choices are what the tenant's trail holds,
    so an unknown value is refused rather than silently matching nothing."""

    actor = forms.ChoiceField(required=False)
    object_type = forms.ChoiceField(required=False, label="Object type")
    action = forms.ChoiceField(required=False)
    since = forms.DateTimeField(
        required=False,
        label="From",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    until = forms.DateTimeField(
        required=False,
        label="Until",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )

    def __init__(self, *args: Any, choices: dict[str, list[str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, values in choices.items():
            field = self.fields[name]
            assert isinstance(field, forms.ChoiceField)
            field.choices = ANY + [(value, value) for value in values]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since >= until:
            raise forms.ValidationError("“From” must be before “Until”.")
        return cleaned

    def filters(self) -> dict[str, Any]:
        """The keyword arguments of ``tenant.selectors.audit_entries``."""
        return {name: value for name, value in self.cleaned_data.items() if value}
