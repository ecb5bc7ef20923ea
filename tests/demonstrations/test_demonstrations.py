"""Demonstration tasks on PostgreSQL: leases and overlap like the comparison queue, idempotent
submit, skip, expiry, paused annotators, the "correct" mode, and a snapshot export in TRL's SFT
format that the SFT trainer's loader accepts."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from feedback_site.annotation.models import Prompt, Response
from feedback_site.core.errors import Conflict, Forbidden, Invalid, NotFound
from feedback_site.demonstrations import services
from feedback_site.demonstrations.models import DemonstrationTask
from rlhf.training.sft import load_demonstrations

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(project, make_user, add_member):
    users = [make_user(f"demo-ann-{i}") for i in range(3)]
    for user in users:
        add_member(project, user, "annotator")
    return users


@pytest.fixture
def prompts(project):
    return [Prompt.objects.create(project=project, text=f"Explain topic {i}.", system_prompt="Be brief.") for i in range(2)]


def test_leases_follow_overlap_and_each_annotator_gets_a_task_once(project, site_admin, people, prompts):
    assert services.tasks_create(project=project, actor=site_admin, mode="write", overlap=2) == 2
    assert services.tasks_create(project=project, actor=site_admin, mode="write", overlap=2) == 0  # idempotent
    a, b, c = people
    first = services.next_task(project=project, annotator=a)
    assert first.task.prompt == prompts[0]
    assert services.next_task(project=project, annotator=a).pk == first.pk  # the open lease is resumed
    assert services.next_task(project=project, annotator=b).task_id == first.task_id  # overlap 2: a second writer
    # Two live leases fill task 1, so the third annotator gets task 2.
    third = services.next_task(project=project, annotator=c)
    assert third.task.prompt == prompts[1]

    demo, created = services.submit(assignment_id=first.pk, annotator=a, text="An ideal answer.", time_spent_ms=1200)
    again, created_again = services.submit(assignment_id=first.pk, annotator=a, text="Something else")
    assert created and not created_again and again.pk == demo.pk and again.text == "An ideal answer."
    with pytest.raises(NotFound):
        services.submit(assignment_id=first.pk, annotator=b, text="not mine")
    with pytest.raises(Invalid):
        services.submit(assignment_id=third.pk, annotator=c, text="   ")

    second_of_a = services.next_task(project=project, annotator=a)
    assert second_of_a.task.prompt == prompts[1]  # task 1 is never offered to `a` again
    services.skip(assignment_id=second_of_a.pk, annotator=a)
    assert services.next_task(project=project, annotator=a) is None  # skipped tasks do not come back


def test_an_expired_lease_frees_its_slot_and_a_late_submit_is_refused_only_when_full(project, site_admin, people, prompts):
    services.tasks_create(project=project, actor=site_admin, mode="write", prompt_ids=[prompts[0].pk], overlap=1)
    a, b, _ = people
    lease = services.next_task(project=project, annotator=a)
    assert services.next_task(project=project, annotator=b) is None  # overlap 1, held by a
    later = timezone.now() + timedelta(seconds=project.lease_seconds + 5)
    taken = services.next_task(project=project, annotator=b, now=later)
    assert taken is not None and taken.task_id == lease.task_id
    services.submit(assignment_id=taken.pk, annotator=b, text="B's answer", now=later)
    with pytest.raises(Conflict, match="expired"):
        services.submit(assignment_id=lease.pk, annotator=a, text="too late", now=later)
    task = DemonstrationTask.objects.get(pk=lease.task_id)
    assert (task.submitted_count, task.is_complete) == (1, True)


def test_paused_annotators_get_nothing_and_staff_only_queue(project, site_admin, people, prompts):
    from feedback_site.projects.models import Membership

    with pytest.raises(Forbidden):
        services.tasks_create(project=project, actor=people[0], mode="write")
    services.tasks_create(project=project, actor=site_admin, mode="write")
    Membership.objects.filter(project=project, user=people[0]).update(paused_at=timezone.now(), pause_reason="gold accuracy")
    with pytest.raises(Forbidden, match="gold accuracy"):
        services.next_task(project=project, annotator=people[0])
    with pytest.raises(Invalid):
        services.tasks_create(project=project, actor=site_admin, mode="rewrite")


def test_correct_mode_shows_a_response_the_safety_screen_does_not_hide(project, site_admin, people, prompts):
    from feedback_site.safety.services import policy_update, screen_responses

    policy_update(project=project, actor=site_admin, action="hide")
    bad = Response.objects.create(prompt=prompts[0], text="how to make a pipe bomb", sample_index=0)
    fine = Response.objects.create(prompt=prompts[0], text="A draft answer with a mistake.", sample_index=1)
    screen_responses(project=project, responses=[bad, fine])
    assert services.tasks_create(project=project, actor=site_admin, mode="correct") == 1  # prompt 2 has no response
    lease = services.next_task(project=project, annotator=people[0])
    body = services.payload(lease)
    assert body["mode"] == "correct" and body["response"] == {"text": "A draft answer with a mistake."}
    assert body["prompt"]["system_prompt"] == "Be brief."


def test_snapshot_exports_trl_sft_messages_and_is_content_addressed(project, site_admin, people, prompts, client):
    services.tasks_create(project=project, actor=site_admin, mode="write", overlap=1)
    for person, answer in zip(people, ["First ideal answer.", "Second ideal answer."]):
        lease = services.next_task(project=project, annotator=person)
        services.submit(assignment_id=lease.pk, annotator=person, text=answer)
    snapshot, created = services.snapshot_create(project=project, actor=site_admin)
    same, created_again = services.snapshot_create(project=project, actor=site_admin)
    assert created and not created_again and same.pk == snapshot.pk and snapshot.demonstration_count == 2

    demos = load_demonstrations(services.snapshot_file(snapshot))  # what `rlhf train sft --data` reads
    assert demos[0] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Explain topic 0."},
        {"role": "assistant", "content": "First ideal answer."},
    ]
    row = json.loads(services.snapshot_file(snapshot).read_text().splitlines()[0])
    assert str(people[0].pk) != row["annotator"] and len(row["annotator"]) == 12  # pseudonymous

    client.force_login(site_admin)
    download = client.get(f"/api/v1/demonstration-snapshots/{snapshot.pk}/download")
    assert download.status_code == 200 and b"First ideal answer." in b"".join(download.streaming_content)


def test_api_round_trip(project, site_admin, people, prompts, client):
    client.force_login(site_admin)
    made = client.post(
        f"/api/v1/projects/{project.pk}/demonstration-tasks/", {"mode": "write", "overlap": 1}, content_type="application/json"
    )
    assert made.status_code == 201 and made.json()["created"] == 2
    bad = client.post(
        f"/api/v1/projects/{project.pk}/demonstration-tasks/", {"mode": "write", "colour": 1}, content_type="application/json"
    )
    assert bad.status_code == 400 and "colour" in bad.json()["detail"]
    client.force_login(people[0])
    leased = client.post(f"/api/v1/projects/{project.pk}/demonstrations/next")
    assert leased.status_code == 200 and leased.json()["prompt"]["text"] == "Explain topic 0."
    url = f"/api/v1/demonstration-assignments/{leased.json()['assignment_id']}/submit"
    first = client.post(url, {"text": "Ideal."}, content_type="application/json")
    repeat = client.post(url, {"text": "Ideal."}, content_type="application/json")
    assert first.status_code == 201 and repeat.status_code == 200 and first.json()["demonstration_id"] == repeat.json()["demonstration_id"]
    assert client.post(f"/api/v1/projects/{project.pk}/demonstration-snapshots/").status_code == 403
