from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("projects", "0003_membership_is_simulated_membership_pause_reason_and_more"),
    ]

    operations = [
        migrations.AlterField(
            model_name="importbatch",
            name="kind",
            field=models.CharField(
                choices=[
                    ("prompts", "Prompts (JSONL or CSV)"),
                    ("pairs", "Ready-made pairs (JSONL)"),
                    ("hh_rlhf", "Anthropic HH-RLHF (JSONL, optionally .gz)"),
                    ("rankings", "K-way rankings (JSONL)"),
                    ("conversations", "Conversation trees, Open-Assistant style (JSONL)"),
                ],
                max_length=20,
            ),
        ),
    ]
