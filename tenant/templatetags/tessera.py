"""The dashboard's one timestamp format and its copy buttons."""

from datetime import datetime
from typing import Any

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timesince import timesince

register = template.Library()

EXACT_FORMAT = "%Y-%m-%d %H:%M:%S %Z"


@register.filter
def when(value: datetime | None) -> SafeString | str:
    """``3 minutes ago``, with the exact time on hover (and in ``datetime``
    for the page's script, which keeps live rows in the same format)."""
    if value is None:
        return "—"
    local = timezone.localtime(value)
    now = timezone.now()
    if abs((now - value).total_seconds()) < 60:
        relative = "just now"
    elif value <= now:
        relative = f"{timesince(value, now, depth=1)} ago"
    else:
        relative = f"in {timesince(now, value, depth=1)}"
    return format_html(
        '<time class="tessera-when" datetime="{}" title="{}">{}</time>',
        value.isoformat(),
        local.strftime(EXACT_FORMAT),
        relative.replace("\xa0", " "),
    )


@register.simple_tag
def copy_button(value: str, label: str = "Copy") -> SafeString:
    """A button that copies ``value`` to the clipboard (dashboard.js)."""
    return format_html(
        '<button type="button" class="tessera-copy" data-copy="{}" title="Copy to clipboard">'
        "{}</button>",
        value,
        label,
    )


@register.simple_tag(takes_context=True)
def crumb_tenant(context: template.Context) -> Any:
    """The tenant a breadcrumb names: the page's object's own (a superuser's
    current tenant may be another), else the switcher's current one."""
    for name in ("linked_object", "original"):
        obj = context.get(name)
        # A client grant's tenant is its client's.
        tenant = getattr(obj, "tenant", None) or getattr(
            getattr(obj, "client", None), "tenant", None
        )
        if tenant is not None:
            return tenant
    return context.get("tessera_current_tenant")
