"""Rules that hold in the database, not only in forms and services."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from apis.models import Api
from clients.models import ClientGrant
from clients.services import client_grant_create
from tenant.models import SigningKey, Tenant
from tests.factories import TEST_ACTOR, make_api, make_client, make_tenant

pytestmark = pytest.mark.django_db


def test_api_identifier_unique_per_tenant_in_database():
    tenant = make_tenant()
    make_api(tenant, "aud")
    with pytest.raises(IntegrityError), transaction.atomic():
        Api.objects.create(tenant=tenant, name="dup", identifier="aud")


def test_same_identifier_allowed_in_two_tenants():
    make_api(make_tenant(), "aud")
    make_api(make_tenant(), "aud")
    assert Api.objects.filter(identifier="aud").count() == 2


def test_token_lifetime_bounded_in_database():
    tenant = make_tenant()
    with pytest.raises(IntegrityError), transaction.atomic():
        Api.objects.create(tenant=tenant, name="x", identifier="x", token_lifetime=2_592_001)


def test_hs256_api_without_secret_is_refused_by_database():
    tenant = make_tenant()
    with pytest.raises(IntegrityError), transaction.atomic():
        Api.objects.create(tenant=tenant, name="x", identifier="x", signing_alg="HS256")


def test_one_active_signing_key_per_tenant_in_database():
    tenant = make_tenant()
    with pytest.raises(IntegrityError), transaction.atomic():
        SigningKey.objects.create(
            tenant=tenant, kid="second", private_key_encrypted="x", public_jwk={}
        )


def test_reserved_slug_refused_by_database():
    with pytest.raises(IntegrityError), transaction.atomic():
        Tenant.objects.create(slug="admin", name="x")


def test_one_grant_per_client_and_api_in_database():
    tenant = make_tenant()
    api = make_api(tenant)
    client, _ = make_client(tenant, {api: []})
    with pytest.raises(IntegrityError), transaction.atomic():
        ClientGrant.objects.create(client=client, api=api)


def test_grant_across_tenants_is_refused():
    api = make_api(make_tenant())
    client, _ = make_client(make_tenant())
    with pytest.raises(ValidationError, match="different tenants"):
        client_grant_create(client=client, api=api, actor=TEST_ACTOR)


def test_client_metadata_must_be_strings():
    with pytest.raises(ValidationError, match="metadata"):
        make_client(make_tenant(), metadata={"n": 1})
