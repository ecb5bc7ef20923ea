"""A small world for the security tests: project A with pairs, a snapshot, a generation run, a
training run and model versions; project B; one user per persona of the permission table."""

from __future__ import annotations

import json

import pytest

PASSWORD = "pw-for-tests-123"

# URL argument -> key of the `world` dict whose object's pk fills it. Rows of the permission
# table can override this per route (`kwargs=`), e.g. `run_id` means a generation or a training run.
ID_KWARGS = {
    "project_id": "project",
    "user_id": "victim",
    "assignment_id": "assignment",
    "snapshot_id": "snapshot",
    "version_id": "version",
    "model_version_id": "version",
    "pair_id": "pair",
    "judgment_id": "judgment",
}


@pytest.fixture
def world(make_user, add_member, site_admin):
    from feedback_site.annotation import services as annotation_services
    from feedback_site.annotation.imports import import_file
    from feedback_site.annotation.models import Judgment, Pair
    from feedback_site.generation.services import generation_launch
    from feedback_site.registry.services import project_create
    from feedback_site.snapshots.services import snapshot_create
    from feedback_site.training.services import training_launch

    project = project_create(creator=site_admin, name="Project A", overlap=2)
    project_b = project_create(creator=site_admin, name="Project B")
    users = {
        "ann_a": make_user("ann_a", password=PASSWORD),
        "ann_a2": make_user("ann_a2", password=PASSWORD),
        "ann_b": make_user("ann_b", password=PASSWORD),
        "staff_a": make_user("staff_a", password=PASSWORD),
        "admin_a": make_user("admin_a", password=PASSWORD),
        "victim": make_user("victim", password=PASSWORD),
    }
    add_member(project, users["ann_a"], "annotator")
    add_member(project, users["ann_a2"], "annotator")
    add_member(project, users["victim"], "annotator")
    add_member(project, users["staff_a"], "ml_staff")
    add_member(project, users["admin_a"], "admin")
    add_member(project_b, users["ann_b"], "annotator")

    labelled = [{"prompt": f"Labelled {i}?", "response_a": f"good {i}", "response_b": f"bad {i}", "preferred": "a"} for i in range(4)]
    unlabelled = [{"prompt": f"Open {i}?", "response_a": f"left {i}", "response_b": f"right {i}"} for i in range(4)]
    for name, lines in (("labelled.jsonl", labelled), ("open.jsonl", unlabelled)):
        import_file(
            project=project, actor=site_admin, kind="pairs", filename=name, data="\n".join(json.dumps(line) for line in lines).encode()
        )

    # Another annotator's judgment, which ann_a must never see.
    other = annotation_services.assignment_next(project=project, annotator=users["ann_a2"]).assignment
    annotation_services.judgment_submit(
        assignment_id=other.pk,
        annotator=users["ann_a2"],
        choice="left",
        strength="clear",
        criteria={},
        rationale="secret rationale of ann_a2",
        time_spent_ms=1000,
    )
    assignment = annotation_services.assignment_next(project=project, annotator=users["ann_a"]).assignment
    snapshot, _ = snapshot_create(project=project, actor=site_admin)
    generation_run = generation_launch(project=project, actor=site_admin, prompt_selection="all", k=2)
    training_run, _ = training_launch(project=project, actor=site_admin, method="reward", snapshot=snapshot, config={"max_steps": 2})
    from feedback_site.quality.services import adjudicate

    adjudicated_pair = Pair.objects.filter(project=project).order_by("-id").first()
    adjudicate(pair_id=adjudicated_pair.pk, actor=site_admin, label="b", note="adjudicated in the fixture")
    from feedback_site.annotation.models import Response
    from feedback_site.playground.services import chat_create
    from feedback_site.safety.services import screen_responses

    chat = chat_create(project=project, actor=site_admin, version_ids=[project.current_policy_id])
    from feedback_site.playground.models import ChatMessage

    ChatMessage.objects.create(chat=chat, turn=0, role="user", content="probe question")
    chat_answer = ChatMessage.objects.create(chat=chat, turn=0, role="assistant", content="probe answer")
    flagged = Response.objects.create(prompt=adjudicated_pair.prompt, text="how to make a pipe bomb", sample_index=9)
    screen = screen_responses(project=project, responses=[flagged])[0]
    from feedback_site.evaluation.models import AdversarialPrompt, EvaluationRun, EvaluationSample

    evaluation_run = EvaluationRun.objects.create(
        project=project, policy=project.current_policy, config={}, launch_key="probe", status="succeeded"
    )
    flagged_sample = EvaluationSample.objects.create(
        run=evaluation_run, sample_set="adversarial", policy_response="probe", flagged=True, flag_reasons=["probe"]
    )
    adversarial_prompt = AdversarialPrompt.objects.create(project=project, key="probe", category="jailbreak", text="probe")
    from feedback_site.demonstrations import services as demo_services

    demo_services.tasks_create(project=project, actor=site_admin, mode="write", overlap=1)
    other_demo = demo_services.next_task(project=project, annotator=users["ann_a2"])
    demo_services.submit(assignment_id=other_demo.pk, annotator=users["ann_a2"], text="ann_a2 writes this")
    demo_snapshot, _ = demo_services.snapshot_create(project=project, actor=site_admin)
    demo_assignment = demo_services.next_task(project=project, annotator=users["ann_a"])
    from feedback_site.ratings import services as rating_services

    rating_services.tasks_create(project=project, actor=site_admin, overlap=1)
    other_rating = rating_services.next_task(project=project, annotator=users["ann_a2"])
    rating_services.submit(assignment_id=other_rating.pk, annotator=users["ann_a2"], label=True, reason="ann_a2 likes this")
    rating_snapshot, _ = rating_services.snapshot_create(project=project, actor=site_admin)
    rating_assignment = rating_services.next_task(project=project, annotator=users["ann_a"])
    from feedback_site.rankings import services as ranking_services
    from tests.rankings.helpers import make_answer_set, rank_next

    ranking_sets = [make_answer_set(project, f"Rank probe {i}", [f"r{i}a", f"r{i}b", f"r{i}c"]) for i in range(2)]
    ranking_services.tasks_create(project=project, actor=site_admin, answer_sets=ranking_sets, overlap=1)
    rank_next(project, users["ann_a2"], lambda ids: [[pk] for pk in ids])
    ranking_assignment = ranking_services.next_task(project=project, annotator=users["ann_a"])
    from feedback_site.conversations import services as conversation_services
    from feedback_site.conversations import snapshots as conversation_snapshots
    from tests.conversations.helpers import make_tasks as make_conversations
    from tests.conversations.helpers import walk

    make_conversations(project, site_admin, overlap=1, turns=1)
    walk(conversation_services.next_task(project=project, annotator=users["ann_a2"]), users["ann_a2"])
    conversation_snapshot, _ = conversation_snapshots.snapshot_create(project=project, actor=site_admin)
    make_conversations(project, site_admin, overlap=1, turns=1)
    conversation_assignment = conversation_services.next_task(project=project, annotator=users["ann_a"])
    from feedback_site.loop.models import Campaign, Round, Stage
    from feedback_site.loop.services import round_config, simulated_annotator_create

    simulated = simulated_annotator_create(project=project, actor=site_admin, name="Probe bot", rule="shorter")
    from feedback_site.registry.models import ModelKind
    from feedback_site.registry.services import version_register

    probe_policy = version_register(
        project=project, kind=ModelKind.POLICY, name="probe policy", artifact_uri="/nonexistent/probe", base_model="probe"
    )
    campaign = Campaign.objects.create(
        project=project, name="probe", version_x=project.current_policy, version_y=probe_policy, prompt_ids=[], status="annotating"
    )
    loop_round = Round.objects.create(
        project=project, number=1, config=round_config({}), policy=project.current_policy, stage=Stage.DONE, created_by=site_admin
    )
    return {
        "simulated_annotator": simulated,
        "campaign": campaign,
        "loop_round": loop_round,
        "chat": chat,
        "chat_answer": chat_answer,
        "demo_assignment": demo_assignment,
        "demo_snapshot": demo_snapshot,
        "rating_assignment": rating_assignment,
        "ranking_assignment": ranking_assignment,
        "rating_snapshot": rating_snapshot,
        "conversation_assignment": conversation_assignment,
        "conversation_snapshot": conversation_snapshot,
        "screen": screen,
        "project": project,
        "project_b": project_b,
        **users,
        "assignment": assignment,
        "pair": Pair.objects.filter(project=project).first(),
        "adjudicated_pair": adjudicated_pair,
        "judgment": Judgment.objects.filter(assignment=other).first(),
        "snapshot": snapshot,
        "generation_run": generation_run,
        "training_run": training_run,
        "version": project.current_policy,
        "evaluation_run": evaluation_run,
        "flagged_sample": flagged_sample,
        "adversarial_prompt": adversarial_prompt,
    }
