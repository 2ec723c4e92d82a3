# Opaque Management API ids for existing rows: added nullable, filled one by
# one (a callable default is evaluated once per AddField), then made unique.

from django.db import migrations, models

import clients.models


def fill(apps, schema_editor):
    Model = apps.get_model("clients", "ClientGrant")
    for row in Model.objects.filter(public_id__isnull=True).only("pk"):
        Model.objects.filter(pk=row.pk).update(public_id=clients.models.new_grant_id())


class Migration(migrations.Migration):

    dependencies = [
        ("clients", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="clientgrant",
            name="public_id",
            field=models.CharField(editable=False, max_length=40, null=True),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="clientgrant",
            name="public_id",
            field=models.CharField(
                default=clients.models.new_grant_id, editable=False, max_length=40, unique=True
            ),
        ),
    ]
