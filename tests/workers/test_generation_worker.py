"""Generation end to end: the web side queues a task in Redis, a real worker process generates
with a (tiny, random) policy through rlhf, and the responses and pairs arrive in PostgreSQL."""

from __future__ import annotations

import json

import pytest

from feedback_site.annotation.models import Pair, Prompt, Response
from feedback_site.generation.models import GenerationRun, RunStatus
from feedback_site.generation.services import generation_launch
from feedback_site.registry.services import project_create
from tests.workers.conftest import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def tiny_project(site_admin, tiny_policy):
    project = project_create(creator=site_admin, name="Tiny", overlap=1, base_policy_uri=str(tiny_policy))
    for i in range(5):
        Prompt.objects.create(project=project, text=f"Tell me about the number {i}.")
    return project


def test_generation_task_goes_through_redis_to_a_worker_and_responses_arrive(tiny_project, site_admin, start_worker):
    worker = start_worker()
    run = generation_launch(project=tiny_project, actor=site_admin, k=3, max_new_tokens=12, batch_size=2, seed=3)
    finished = wait_for(
        lambda: GenerationRun.objects.filter(pk=run.pk, status__in=[RunStatus.SUCCEEDED, RunStatus.FAILED]).first(),
        timeout=240,
        worker=worker,
        what="the generation run to finish",
    )
    assert finished.status == RunStatus.SUCCEEDED, finished.message
    assert finished.progress_done == finished.progress_total == 5
    assert finished.tokens_per_second and finished.tokens_per_second > 0
    assert Response.objects.filter(generation_run=run, model_version=tiny_project.current_policy).count() == 15
    assert Pair.objects.filter(generation_run=run).count() == finished.pair_count > 0
    assert "finished" in finished.log_tail


def test_a_redelivered_run_resumes_from_its_batch_file(tiny_project, site_admin, settings, monkeypatch, tiny_policy):
    """In-process: a worker that died after one batch left its batch file; running the task again
    generates only the missing prompts and the result equals an uninterrupted run."""
    from feedback_site.generation import services
    from workers import generation_job

    monkeypatch.setattr(services, "enqueue", lambda *a: "id")
    prompt_ids = list(Prompt.objects.filter(project=tiny_project).order_by("id").values_list("id", flat=True))

    full = generation_launch(project=tiny_project, actor=site_admin, k=2, max_new_tokens=8, seed=11, prompt_selection="all")
    generation_job.run_generation(full.pk)
    expected = {
        pid: list(Response.objects.filter(generation_run=full, prompt_id=pid).order_by("sample_index").values_list("text", flat=True))
        for pid in prompt_ids
    }

    resumed = generation_launch(project=tiny_project, actor=site_admin, k=2, max_new_tokens=8, seed=11, prompt_selection="all")
    folder = generation_job.run_dir(resumed.pk)
    folder.mkdir(parents=True)
    done_first = prompt_ids[:2]
    with (folder / "batches.jsonl").open("w") as handle:
        for pid in done_first:
            handle.write(json.dumps({"prompt_id": pid, "responses": expected[pid]}) + "\n")
        handle.write('{"prompt_id": 99, "respo')  # torn line from the kill
    generated = []
    real_iter = __import__("rlhf.generation", fromlist=["iter_generate"]).iter_generate

    def spy(model_path, conversations, k, sampling, control=None, indices=None, **kw):
        generated.extend(indices)
        yield from real_iter(model_path, conversations, k, sampling, control=control, indices=indices, **kw)

    monkeypatch.setattr("rlhf.generation.iter_generate", spy)
    generation_job.run_generation(resumed.pk)
    resumed.refresh_from_db()
    assert resumed.status == RunStatus.SUCCEEDED, resumed.message
    assert sorted(generated) == prompt_ids[2:]
    got = {
        pid: list(Response.objects.filter(generation_run=resumed, prompt_id=pid).order_by("sample_index").values_list("text", flat=True))
        for pid in prompt_ids
    }
    assert got == expected
