"""Dashboard login throttling with django-axes: after a few wrong passwords,
one username from one address is locked out for a while, and the login page
says so. ``python manage.py axes_reset_username NAME`` (or ``axes_reset``)
unlocks early."""

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.core.exceptions import NON_FIELD_ERRORS
from django.forms.utils import ErrorDict
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


class LoginThrottleBackend(AxesStandaloneBackend):
    """Axes' lockout check for logins that come with a request (the dashboard
    form). ``authenticate()`` without one (a script, ``Client.login`` in tests)
    has no address to throttle and is left to the other backends, where axes
    would raise."""

    def authenticate(self, request: HttpRequest | None, *args: Any, **kwargs: Any) -> None:
        if request is None:
            return None
        return super().authenticate(request, *args, **kwargs)  # type: ignore[no-any-return]


def lockout_message() -> str:
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return (
        f"Too many failed login attempts for this username from your address: "
        f"try again in {minutes} minutes, or ask an administrator to unlock it."
    )


def login_locked_out(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    """The dashboard's login page, with the lockout as its error (status 429)."""
    username = request.POST.get("username", "") if request.method == "POST" else ""
    form = AdminAuthenticationForm(request, initial={"username": username})
    # The message is the form's only error; validating the form again would
    # authenticate, and count, once more.
    errors = form.error_class([lockout_message()], error_class="nonfield")
    form._errors = ErrorDict({NON_FIELD_ERRORS: errors})  # type: ignore[attr-defined]
    context = {
        **admin.site.each_context(request),
        "title": "Log in",
        "subtitle": None,
        "app_path": request.get_full_path(),
        "username": username,
        "form": form,
        REDIRECT_FIELD_NAME: request.GET.get(REDIRECT_FIELD_NAME, ""),
    }
    return render(request, "admin/login.html", context, status=429)
