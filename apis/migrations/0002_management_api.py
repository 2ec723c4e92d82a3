# Every tenant gets its built-in Management API ({issuer}api/v2/), as new
# tenants do in tenant_create.

from django.conf import settings
from django.db import migrations, models

RESOURCES = ("hooks", "clients", "resource_servers", "client_grants")
VERBS = ("read", "create", "update", "delete")


def issuer(tenant):
    if tenant.domain:
        return f"{settings.TENANT_DOMAIN_SCHEME}://{tenant.domain}/"
    return f"{settings.PUBLIC_URL}/{tenant.slug}/"


def create_management_apis(apps, schema_editor):
    Tenant = apps.get_model("tenant", "Tenant")
    Api = apps.get_model("apis", "Api")
    ApiScope = apps.get_model("apis", "ApiScope")
    for tenant in Tenant.objects.all():
        if Api.objects.filter(tenant=tenant, is_system=True).exists():
            continue
        identifier = f"{issuer(tenant)}api/v2/"
        api, _ = Api.objects.update_or_create(
            tenant=tenant,
            identifier=identifier,
            defaults={"name": "Tessera Management API", "is_system": True},
        )
        for resource in RESOURCES:
            for verb in VERBS:
                ApiScope.objects.get_or_create(
                    api=api,
                    value=f"{verb}:{resource}",
                    defaults={
                        "description": f"{verb.capitalize()} {resource.replace('_', ' ')}"
                    },
                )


def delete_management_apis(apps, schema_editor):
    apps.get_model("apis", "Api").objects.filter(is_system=True).delete()


class Migration(migrations.Migration):

    dependencies = [
        ('apis', '0001_initial'),
        ('tenant', '0001_initial'),
    ]

    operations = [
        migrations.AddField(
            model_name='api',
            name='is_system',
            field=models.BooleanField(default=False, editable=False),
        ),
        migrations.RunPython(create_management_apis, delete_management_apis),
    ]
