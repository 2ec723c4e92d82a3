"""Who writes: the actor every service records in the audit trail.

Every service takes a required keyword-only ``actor: Actor`` and calls
:func:`audit_record` inside its own transaction: a forgotten actor is a
``TypeError``, never a write recorded as nobody's. The dashboard passes
``Actor.for_user(request.user)``, commands ``Actor.cli()``, the Management
API ``Actor.for_client(...)``; a service that runs another (a tenant's
provisioning steps) passes on the actor it was given.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass, replace
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from tenant.models import AuditEntry, Tenant


@dataclass(frozen=True)
class Actor:
    """Who made a change, and through which surface."""

    kind: str
    id: str
    name: str
    source: str

    @classmethod
    def for_user(cls, user: AbstractBaseUser | AnonymousUser) -> Actor:
        """A signed-in dashboard user (every dashboard write has one)."""
        if not user.is_authenticated:
            raise ValueError("A dashboard write needs a signed-in user.")
        return cls(
            kind=AuditEntry.ActorKind.USER,
            id=str(user.pk),
            name=user.get_username(),
            source=AuditEntry.Source.DASHBOARD,
        )

    @classmethod
    def cli(cls) -> Actor:
        """``manage.py`` run by whoever owns the shell."""
        try:
            login = getpass.getuser()
        except (OSError, KeyError):  # no passwd entry (containers)
            login = ""
        return cls(
            kind=AuditEntry.ActorKind.CLI, id=login, name=login, source=AuditEntry.Source.CLI
        )

    @classmethod
    def for_client(cls, *, client_id: str, name: str) -> Actor:
        """A client calling the Management API with a tenant token."""
        return cls(
            kind=AuditEntry.ActorKind.CLIENT,
            id=client_id,
            name=name,
            source=AuditEntry.Source.API,
        )

    def via_import(self) -> Actor:
        """The same person or client, writing through an import from Auth0
        (``manage.py auth0 import`` or the dashboard's import page)."""
        return replace(self, source=AuditEntry.Source.IMPORT)


# An object's recorded fields: plain values, never a secret's value.
State = dict[str, Any] | None


@dataclass(frozen=True)
class Target:
    """The object a write changed."""

    tenant: Tenant
    type: str
    id: object
    repr: str


def audit_record(
    *, target: Target, actor: Actor, action: str, before: State = None, after: State = None
) -> AuditEntry:
    """Add one audit row; call it inside the write's transaction."""
    return AuditEntry.objects.create(
        tenant=target.tenant,
        actor_kind=actor.kind,
        actor_id=actor.id[:255],
        actor_name=actor.name[:255],
        source=actor.source,
        action=action,
        object_type=target.type,
        object_id=str(target.id)[:255],
        object_repr=target.repr[:300],
        before=before,
        after=after,
    )
