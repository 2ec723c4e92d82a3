# Opaque Management API ids for existing rows: added nullable, filled one by
# one (a callable default is evaluated once per AddField), then made unique.

from django.db import migrations, models

import hooks.models


def fill(apps, schema_editor):
    Model = apps.get_model("hooks", "Hook")
    for row in Model.objects.filter(public_id__isnull=True).only("pk"):
        Model.objects.filter(pk=row.pk).update(public_id=hooks.models.new_hook_id())


class Migration(migrations.Migration):

    dependencies = [
        ("hooks", "0004_hook_dependencies"),
    ]

    operations = [
        migrations.AddField(
            model_name="hook",
            name="public_id",
            field=models.CharField(editable=False, max_length=40, null=True),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="hook",
            name="public_id",
            field=models.CharField(
                default=hooks.models.new_hook_id, editable=False, max_length=40, unique=True
            ),
        ),
    ]
