"""What the hook page and the Action page share as admins: an add form that
opens the new object's page, a change page that is a code editor saving
with its own button, an audit-trail history, and endpoints mounted on the
object's page URL."""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django import forms
from django.db.models import Model
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from tenant.admin import TenantScopedAdmin
from tenant.selectors import audit_entries

ObjectView = Callable[..., HttpResponse]


class EditorPageAdmin(TenantScopedAdmin):
    """A tenant-scoped admin whose change page is an editor page.

    Subclasses name the two forms and their fields, and how the audit trail
    knows their objects (``audit_object_type``, ``audit_object_id``)."""

    add_form: type[forms.ModelForm]
    add_fields: list[str]
    change_form: type[forms.ModelForm]
    change_fields: list[str]
    audit_object_type: str

    class Media:
        css = {"all": ["tessera/hooks.css"]}

    def audit_object_id(self, obj: Any) -> Any:
        return obj.pk

    # --- forms -------------------------------------------------------------

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        kwargs["form"] = self.change_form if obj is not None else self.add_form
        kwargs["fields"] = None
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.add_fields if obj is None else self.change_fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return []

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any
    ) -> Any:
        # One way forward on each page: "Create" opens the new object's page;
        # that page saves with its own Save button (Ctrl+S), so the admin's
        # "Save and add another" / "Save and continue" do not apply.
        context.update(
            {
                "show_save_and_add_another": False,
                "show_save_and_continue": False,
                "show_save": not kwargs.get("change", False),
            }
        )
        return super().render_change_form(request, context, *args, **kwargs)

    def response_post_save_add(self, request: HttpRequest, obj: Model) -> HttpResponseRedirect:
        opts = self.opts
        return HttpResponseRedirect(
            reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
        )

    # --- history -----------------------------------------------------------

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: Any = None
    ) -> HttpResponse:
        """The object's audit trail, whichever surface made the change."""
        obj = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if obj is not None:
            context["audit_entries"] = audit_entries(
                tenant=obj.tenant,
                object_type=self.audit_object_type,
                object_id=self.audit_object_id(obj),
            )[:200]
        return super().history_view(request, object_id, context)

    # --- the page's endpoints ----------------------------------------------

    def page_context(self, request: HttpRequest) -> dict[str, Any]:
        """What a full admin page of this model needs besides its own."""
        return {**self.admin_site.each_context(request), "opts": self.opts}

    def object_view(
        self, view: ObjectView, *, write: bool, with_context: bool = False
    ) -> ObjectView:
        """``view(request, obj, **kwargs)`` at a URL with ``<int:object_id>``,
        for an object the user may see (``write``: change) in their tenants;
        any other is a 404. ``with_context`` passes ``context``
        (:meth:`page_context`) for views that render a page."""

        @wraps(view)
        def wrapper(request: HttpRequest, object_id: int, **kwargs: Any) -> HttpResponse:
            obj = self.get_object(request, str(object_id))
            allowed = self.has_change_permission if write else self.has_view_permission
            if obj is None or not allowed(request, obj):
                raise Http404(f"No such {self.opts.verbose_name}.")
            if with_context:
                kwargs["context"] = self.page_context(request)
            return view(request, obj, **kwargs)

        return self.admin_site.admin_view(wrapper)
