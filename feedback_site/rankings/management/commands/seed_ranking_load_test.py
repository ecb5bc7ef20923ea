"""`manage.py seed_ranking_load_test`: a project full of ready ranking tasks and annotator
accounts, for load tests (benchmarks/annotator_load.py --kind ranking).

    python manage.py seed_ranking_load_test --tasks 2000 --k 4 --annotators 200 --overlap 3 --out var/load.json

The project and the annotators come from `seed_load_test` (with no pairs), then each task is a
prompt with K answers of realistic length, inserted in bulk like that command's pairs (a ranking
task is exactly what `rankings.services.queue_answer_sets` writes). One transaction; writes
`{"project_id", "tokens", "annotators", "tasks", "k", "overlap"}` to --out.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, reset_queries, transaction

from feedback_site.annotation.management.commands.seed_load_test import _prompt_text, _response_text
from feedback_site.annotation.models import Prompt, Response
from feedback_site.core.rendering import render_markdown
from feedback_site.projects.models import Project
from feedback_site.rankings.models import RankingTask

_ANSWER_POOL = 5000


class Command(BaseCommand):
    help = "Create a project with N ready ranking tasks of K answers and M annotators with API tokens (load tests)."

    def add_arguments(self, parser):
        parser.add_argument("--tasks", type=int, required=True, help="Ranking tasks to queue.")
        parser.add_argument("--k", type=int, default=4, help="Answers per task (3-9).")
        parser.add_argument("--annotators", type=int, required=True)
        parser.add_argument("--overlap", type=int, default=1)
        parser.add_argument("--out", required=True)
        parser.add_argument("--project-name", default="Load test (rankings)")
        parser.add_argument("--batch-size", type=int, default=1000)
        parser.add_argument("--seed", type=int, default=0)

    def handle(
        self, *args, tasks: int, k: int, annotators: int, overlap: int, out: str, project_name: str, batch_size: int, seed: int, **_
    ):
        if not 3 <= k <= 9:
            raise CommandError("--k must be between 3 and 9")
        if tasks < 0:
            raise CommandError("--tasks must be zero or more")
        rng = random.Random(seed)
        with transaction.atomic():
            call_command(
                "seed_load_test", pairs=0, annotators=annotators, overlap=overlap, out=out, project_name=project_name, stdout=self.stdout
            )
            data = json.loads(Path(out).read_text())
            project = Project.objects.get(pk=data["project_id"])
            answers = [_response_text(rng) for _ in range(min(k * tasks, _ANSWER_POOL))]
            for start in range(0, tasks, batch_size):
                n = min(tasks, start + batch_size) - start
                texts = [_prompt_text(rng, start + i) for i in range(n)]
                prompts = Prompt.objects.bulk_create(
                    [
                        Prompt(project=project, text=t, text_html=render_markdown(t), history_html=[], metadata={"seed_load_test": True})
                        for t in texts
                    ]
                )
                responses = Response.objects.bulk_create(
                    [
                        Response(prompt=prompt, text=text, text_html=render_markdown(text), sample_index=j)
                        for prompt in prompts
                        for j, text in enumerate(rng.sample(answers, k))
                    ]
                )
                rows = []
                for i, prompt in enumerate(prompts):
                    ids = [r.pk for r in responses[k * i : k * (i + 1)]]
                    rows.append(
                        RankingTask(
                            project=project,
                            prompt=prompt,
                            response_ids=ids,
                            answer_key=",".join(map(str, sorted(ids))),
                            overlap=project.overlap,
                        )
                    )
                RankingTask.objects.bulk_create(rows)
                reset_queries()
        with connection.cursor() as cursor:
            for model in (RankingTask, Prompt, Response):
                cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")
        data.update(tasks=tasks, k=k, pairs=0)
        tmp = Path(out).with_name(Path(out).name + ".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, out)
        self.stdout.write(f"Project {project.pk}: {tasks:,} ranking tasks of {k} answers (overlap {overlap}) and {annotators:,} annotators")
