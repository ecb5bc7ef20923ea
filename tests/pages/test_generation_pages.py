"""Launching generation from the page, the live run page and cancelling."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from feedback_site.generation.models import GenerationRun, RunStatus

pytestmark = pytest.mark.django_db

GOOD = {
    "k": 3,
    "prompt_selection": "unanswered",
    "temperature": 0.8,
    "top_p": 0.9,
    "top_k": 40,
    "max_new_tokens": 64,
    "seed": 7,
    "batch_size": 4,
    "pairing": "sample",
    "pairs_per_prompt": 2,
}


def _form(project, **changes):
    return {"policy": project.current_policy_id, **GOOD, **changes}


def test_launch_queues_a_run_and_opens_its_page(login, ml_staff, project, make_prompts, sent_tasks):
    make_prompts(project, 4)
    client = login(ml_staff)
    response = client.post(reverse("project-generate", args=[project.pk]), _form(project))
    run = GenerationRun.objects.get(project=project)
    assert response.status_code == 302
    assert response["Location"] == reverse("generation-run", args=[run.pk])
    assert (run.k, run.temperature, run.top_p, run.top_k, run.max_new_tokens, run.seed, run.batch_size) == (3, 0.8, 0.9, 40, 64, 7, 4)
    assert (run.pairing, run.pairs_per_prompt, run.policy_id, run.created_by) == ("sample", 2, project.current_policy_id, ml_staff)
    assert len(run.prompt_ids) == 4 and run.status == RunStatus.QUEUED
    assert sent_tasks == [("generation.run", (run.pk,))]

    html = client.get(response["Location"]).content.decode()
    assert f"Generation run {run.pk} queued: 3 responses for each of 4 prompts." in html
    assert f'data-api-url="{reverse("api-generation-run", args=[run.pk])}"' in html
    assert 'src="/static/generation/run_progress.js"' in html
    assert 'data-field="progress_done">0<' in html  # each value has its own element for the live update
    assert "Cancel run" in html


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"temperature": -1}, "temperature: must be between 0 and 5"),
        ({"top_p": 0}, "top_p: must be &gt; 0"),
        ({"k": 1}, "k: must be between 2 and 16"),
        ({"k": 20}, "k: must be between 2 and 16"),
        ({"max_new_tokens": 0}, "max_new_tokens: must be between 1 and 4096"),
        ({"pairs_per_prompt": 9}, "pairs_per_prompt: must be between 1 and 3"),
        ({"pairs_per_prompt": ""}, "Say how many pairs to sample per prompt."),
        ({"temperature": "hot"}, "Enter a number."),
        ({"policy": 999999}, "Select a valid choice"),
        ({"prompt_selection": "some"}, "Select a valid choice"),
    ],
)
def test_bad_values_rerender_with_error_and_create_no_run(login, ml_staff, project, make_prompts, sent_tasks, changes, message):
    make_prompts(project, 2)
    response = login(ml_staff).post(reverse("project-generate", args=[project.pk]), _form(project, **changes))
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html
    assert "The run was not started." in html
    assert not GenerationRun.objects.exists()
    assert sent_tasks == []


def test_no_prompts_is_explained(login, ml_staff, project, sent_tasks):
    response = login(ml_staff).post(reverse("project-generate", args=[project.pk]), _form(project))
    assert response.status_code == 400
    assert "there are no prompts to answer; import prompts first" in response.content.decode()
    assert not GenerationRun.objects.exists()


def test_broker_down_shows_queue_unavailable_and_run_ends_failed(login, ml_staff, project, make_prompts, broker_down):
    make_prompts(project, 2)
    response = login(ml_staff).post(reverse("project-generate", args=[project.pk]), _form(project))
    assert response.status_code == 503
    html = response.content.decode()
    assert "The task queue is unavailable (OperationalError); nothing was started." in html
    run = GenerationRun.objects.get(project=project)
    assert run.status == RunStatus.FAILED
    assert run.message.startswith("The task queue is unavailable (OperationalError)")
    assert run.finished_at is not None
    # The failed run is listed on the page that was re-rendered.
    assert re.search(rf'href="{reverse("generation-run", args=[run.pk])}"', html)


def test_run_page_api_used_by_the_script_answers_the_session(login, ml_staff, generation_run):
    response = login(ml_staff).get(reverse("api-generation-run", args=[generation_run.pk]))
    assert response.status_code == 200
    body = response.json()
    for key in ("status", "progress_done", "progress_total", "tokens_per_second", "message", "log_tail"):
        assert key in body


def test_log_and_message_are_escaped(login, site_admin, generation_run):
    from feedback_site.generation.services import generation_fail, generation_log

    generation_log(run_id=generation_run.pk, line="<script>alert(1)</script>")
    generation_fail(run_id=generation_run.pk, message="<img src=x onerror=alert(2)>")
    html = login(site_admin).get(reverse("generation-run", args=[generation_run.pk])).content.decode()
    assert "<script>alert(1)</script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Cancel run" not in html  # finished runs cannot be cancelled


def test_cancel_queued_run_then_cancel_again_is_409(login, ml_staff, generation_run):
    client = login(ml_staff)
    url = reverse("generation-run-cancel", args=[generation_run.pk])
    response = client.post(url)
    assert response.status_code == 302
    generation_run.refresh_from_db()
    assert generation_run.status == RunStatus.CANCELLED and generation_run.cancel_requested

    response = client.post(url)
    assert response.status_code == 409
    assert "This run already cancelled." in response.content.decode()


def test_cancel_running_run_asks_the_worker(login, ml_staff, generation_run):
    from feedback_site.generation.services import generation_mark_running

    generation_mark_running(run_id=generation_run.pk)
    client = login(ml_staff)
    response = client.post(reverse("generation-run-cancel", args=[generation_run.pk]), follow=True)
    assert "Cancel requested" in response.content.decode()
    generation_run.refresh_from_db()
    assert generation_run.status == RunStatus.RUNNING and generation_run.cancel_requested


def test_cancel_needs_post(login, ml_staff, generation_run):
    assert login(ml_staff).get(reverse("generation-run-cancel", args=[generation_run.pk])).status_code == 405


def test_generate_page_lists_runs(login, ml_staff, project, generation_run):
    html = login(ml_staff).get(reverse("project-generate", args=[project.pk])).content.decode()
    assert reverse("generation-run", args=[generation_run.pk]) in html
    assert "K responses per prompt from policy version V" in html
