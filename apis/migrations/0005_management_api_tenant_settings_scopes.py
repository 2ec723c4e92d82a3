# The built-in Management API of every existing tenant gets the tenant
# settings scopes that new tenants get from management_api_ensure. Existing
# grants are left as they are: granting a client more is its owner's decision.

from django.db import migrations

SCOPES = {
    "read:tenant_settings": "Read tenant settings",
    "update:tenant_settings": "Update tenant settings",
}


def add_scopes(apps, schema_editor):
    Api = apps.get_model("apis", "Api")
    ApiScope = apps.get_model("apis", "ApiScope")
    for api in Api.objects.filter(is_system=True):
        for scope, description in SCOPES.items():
            ApiScope.objects.get_or_create(api=api, value=scope, defaults={"description": description})


def remove_scopes(apps, schema_editor):
    apps.get_model("apis", "ApiScope").objects.filter(
        api__is_system=True, value__in=list(SCOPES)
    ).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("apis", "0004_management_api_actions_scopes"),
    ]

    operations = [migrations.RunPython(add_scopes, remove_scopes)]
