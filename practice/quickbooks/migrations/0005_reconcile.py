from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("quickbooks", "0004_change_notices")]

    operations = [
        migrations.AddField(
            model_name="customerbalance",
            name="detail",
            field=models.JSONField(blank=True, default=dict),
        ),
    ]
