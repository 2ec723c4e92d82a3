"""Dashboard login throttling (django-axes) through the real login form:
locked per username and address after a few failures, a clear message,
unlocked by the CLI."""

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client as HttpClient

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def alice():
    return User.objects.create_user("alice", password=PASSWORD, is_staff=True)


def log_in(username, password, ip="203.0.113.7"):
    http = HttpClient(enforce_csrf_checks=True, REMOTE_ADDR=ip)
    page = http.get(LOGIN)
    token = page.cookies["csrftoken"].value
    return http.post(
        LOGIN,
        {"username": username, "password": password, "csrfmiddlewaretoken": token},
    )


def fail(times, username="alice", ip="203.0.113.7"):
    for _ in range(times):
        response = log_in(username, "wrong", ip)
        assert response.status_code == 200  # the form again, with Django's own error


def lock_out(limit, username="alice", ip="203.0.113.7"):
    fail(limit - 1, username, ip)
    assert_locked_out(log_in(username, "wrong", ip))  # the limit-th failure locks


def assert_locked_out(response):
    assert response.status_code == 429
    page = response.content.decode()
    assert "Too many failed login attempts" in page
    assert 'name="password"' in page  # still the login page, not a bare error


def test_right_password_logs_in(alice):
    response = log_in("alice", PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == "/admin/"


def test_failures_below_the_limit_do_not_lock(alice, settings):
    fail(settings.AXES_FAILURE_LIMIT - 1)
    assert log_in("alice", PASSWORD).status_code == 302


def test_limit_of_failures_locks_out_even_the_right_password(alice, settings):
    fail(settings.AXES_FAILURE_LIMIT - 1)
    assert_locked_out(log_in("alice", "wrong"))
    assert_locked_out(log_in("alice", PASSWORD))


def test_lockout_is_per_username_and_address(alice, settings):
    User.objects.create_user("bob", password=PASSWORD, is_staff=True)
    lock_out(settings.AXES_FAILURE_LIMIT)
    assert log_in("alice", PASSWORD, ip="198.51.100.9").status_code == 302  # other address
    assert log_in("bob", PASSWORD).status_code == 302  # other username, same address


def test_axes_reset_username_unlocks(alice, settings):
    lock_out(settings.AXES_FAILURE_LIMIT)
    assert_locked_out(log_in("alice", PASSWORD))
    call_command("axes_reset_username", "alice")
    assert log_in("alice", PASSWORD).status_code == 302


def test_success_resets_the_failure_count(alice, settings):
    fail(settings.AXES_FAILURE_LIMIT - 1)
    assert log_in("alice", PASSWORD).status_code == 302
    fail(settings.AXES_FAILURE_LIMIT - 1)
    assert log_in("alice", PASSWORD).status_code == 302


def test_failures_record_no_password(alice):
    fail(2)
    attempt = AccessAttempt.objects.get(username="alice")
    assert "wrong" not in attempt.post_data


def test_a_superuser_deleting_the_attempt_in_the_dashboard_unlocks(alice, settings):
    lock_out(settings.AXES_FAILURE_LIMIT)
    attempt = AccessAttempt.objects.get(username="alice")
    admin = HttpClient(REMOTE_ADDR="198.51.100.1")
    admin.force_login(User.objects.create_superuser("root", password=PASSWORD))
    listing = admin.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200 and "alice" in listing.content.decode()
    url = f"/admin/axes/accessattempt/{attempt.pk}/delete/"
    assert admin.post(url, {"post": "yes"}).status_code == 302
    assert log_in("alice", PASSWORD).status_code == 302
