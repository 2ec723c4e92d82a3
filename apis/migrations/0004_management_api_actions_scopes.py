# The built-in Management API of every existing tenant gets the Actions
# scopes that new tenants get from management_api_ensure. Existing grants are
# left as they are: granting a client more is its owner's decision.

from django.db import migrations

SCOPES = [f"{verb}:actions" for verb in ("read", "create", "update", "delete")]


def add_scopes(apps, schema_editor):
    Api = apps.get_model("apis", "Api")
    ApiScope = apps.get_model("apis", "ApiScope")
    for api in Api.objects.filter(is_system=True):
        for scope in SCOPES:
            verb = scope.split(":")[0]
            ApiScope.objects.get_or_create(
                api=api, value=scope, defaults={"description": f"{verb.capitalize()} actions"}
            )


def remove_scopes(apps, schema_editor):
    apps.get_model("apis", "ApiScope").objects.filter(
        api__is_system=True, value__in=SCOPES
    ).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("apis", "0003_api_public_id"),
    ]

    operations = [migrations.RunPython(add_scopes, remove_scopes)]
