# Opaque Management API ids for existing rows: added nullable, filled one by
# one (a callable default is evaluated once per AddField), then made unique.

from django.db import migrations, models

import apis.models


def fill(apps, schema_editor):
    Model = apps.get_model("apis", "Api")
    for row in Model.objects.filter(public_id__isnull=True).only("pk"):
        Model.objects.filter(pk=row.pk).update(public_id=apis.models.new_api_id())


class Migration(migrations.Migration):

    dependencies = [
        ("apis", "0002_management_api"),
    ]

    operations = [
        migrations.AddField(
            model_name="api",
            name="public_id",
            field=models.CharField(editable=False, max_length=40, null=True),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="api",
            name="public_id",
            field=models.CharField(
                default=apis.models.new_api_id, editable=False, max_length=40, unique=True
            ),
        ),
    ]
