"""Gold pairs: mixed into each annotator's queue at the project's rate, outside the overlap,
indistinguishable in the API and the page; gold accuracy; pause after too many wrong answers,
and lifting the pause. On PostgreSQL, through both the SQL and the ORM implementation."""

from __future__ import annotations

import re
import threading

import pytest
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from feedback_site.annotation import services
from feedback_site.annotation.gold import gold_accuracy_by_annotator
from feedback_site.annotation.models import Assignment, Judgment, Pair
from feedback_site.annotation.queue import gold_turn
from feedback_site.core.errors import Forbidden, Invalid
from feedback_site.core.models import AuditEntry
from feedback_site.projects.models import Membership

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("queue_path")]


def _api(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def quality_project(make_project, name: str = "Quality", *, overlap: int, **quality):
    """A project with quality settings (gold rate, pause thresholds, dynamic overlap)."""
    project = make_project(name, overlap=overlap)
    for field, value in quality.items():
        setattr(project, field, value)
    project.save(update_fields=list(quality))
    return project


def _gold(pairs, label="a", actor=None):
    for pair in pairs:
        services.pair_set_gold(pair=pair, actor=actor, gold=True, gold_label=label)


@pytest.fixture
def staff(make_user, project, add_member):
    user = make_user("goldstaff")
    add_member(project, user, "ml_staff")
    return user


def _answer_for(pair: Pair, swapped: bool, correct: bool) -> str:
    """The display choice that is (or is not) the gold label for this order of display."""
    a_side = "right" if swapped else "left"
    b_side = "left" if swapped else "right"
    right_answer = a_side if pair.gold_label == "a" else b_side
    return right_answer if correct else (b_side if right_answer == a_side else a_side)


def test_gold_turn_spreads_gold_evenly_at_the_rate():
    for user_id in range(1, 40):
        turns = [gold_turn(user_id, k, 0.1) for k in range(100)]
        assert sum(turns) == 10  # exactly the rate over any 100 assignments
        assert sum(turns[:10]) == 1 and sum(turns[50:60]) == 1
    # The position within each run of ten differs between annotators.
    assert len({[gold_turn(u, k, 0.1) for k in range(10)].index(True) for u in range(1, 40)}) > 3
    assert not any(gold_turn(7, k, 0.0) for k in range(50))
    assert all(gold_turn(7, k, 1.0) for k in range(50))


def test_gold_is_mixed_in_at_the_rate_and_served_to_everyone_outside_the_overlap(
    make_project, make_user, add_member, make_pairs, site_admin
):
    project = quality_project(make_project, overlap=1, gold_rate=0.25)
    normal = make_pairs(project, 12)
    gold = make_pairs(project, 4, texts=lambda i: (f"Gold A{i}", f"Gold B{i}"))
    _gold(gold, actor=site_admin)
    users = [make_user(f"g{i}") for i in range(3)]
    for user in users:
        add_member(project, user, "annotator")
    served: dict[int, list[int]] = {}
    for user in users:
        served[user.pk] = []
        for _ in range(4):  # four assignments each: with rate 1/4, exactly one is gold
            leased = services.assignment_next(project=project, annotator=user)
            served[user.pk].append(leased.assignment.pair_id)
            services.judgment_submit(assignment_id=leased.assignment.pk, annotator=user, choice="left")
    gold_ids = {p.pk for p in gold}
    for pair_ids in served.values():
        assert len([p for p in pair_ids if p in gold_ids]) == 1
    # Gold pairs are judged by several annotators though overlap is 1, and never count toward it.
    for pair in Pair.objects.filter(pk__in=gold_ids):
        assert pair.judgment_count == 0 and pair.is_gold and pair.is_complete
    assert Judgment.objects.filter(pair__in=gold_ids).count() == 3
    # Normal pairs keep their overlap of 1.
    assert all(p.judgment_count <= 1 for p in Pair.objects.filter(pk__in=[p.pk for p in normal]))


def test_rate_one_serves_every_gold_pair_once_then_normal_work(make_project, make_user, add_member, make_pairs, site_admin):
    project = quality_project(make_project, overlap=1, gold_rate=1.0)
    make_pairs(project, 2)
    gold = make_pairs(project, 2, texts=lambda i: (f"Gold A{i}", f"Gold B{i}"))
    _gold(gold, actor=site_admin)
    user = make_user("eager")
    add_member(project, user, "annotator")
    seen = []
    while (leased := services.assignment_next(project=project, annotator=user)) is not None:
        seen.append(leased.assignment.pair_id)
        services.judgment_submit(assignment_id=leased.assignment.pk, annotator=user, choice="tie")
    assert len(seen) == len(set(seen)) == 4
    assert set(seen[:2]) == {p.pk for p in gold}  # gold while there is unseen gold, then the rest


def _shape(value):
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(item) for item in value]
    return type(value).__name__


def test_gold_and_normal_pairs_look_the_same_in_the_api_and_the_page(make_project, make_user, add_member, make_pairs, site_admin, client):
    project = quality_project(make_project, overlap=1, gold_rate=0.5)
    make_pairs(project, 3)
    gold = make_pairs(project, 3, texts=lambda i: (f"Gold A{i}", f"Gold B{i}"))
    _gold(gold, actor=site_admin)
    user = make_user("looker", password="pw-for-tests-123")
    add_member(project, user, "annotator")
    api = _api(user)
    gold_ids = {p.pk for p in gold}
    bodies = {True: [], False: []}
    pages = {True: [], False: []}
    client.force_login(user)
    for _ in range(4):
        response = api.post(f"/api/v1/projects/{project.pk}/assignments/next")
        assert response.status_code == 200
        body = response.json()
        is_gold = Assignment.objects.get(pk=body["assignment_id"]).pair_id in gold_ids
        bodies[is_gold].append((body, dict(response.headers)))
        page = client.get(f"/projects/{project.pk}/annotate/").content.decode()
        # The CSRF token differs per render; everything else must be byte-identical.
        page = re.sub(r'"csrfToken":\s*"[^"]*"', "", page)
        pages[is_gold].append(re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", page))
        submit = api.post(f"/api/v1/assignments/{body['assignment_id']}/judgment", {"choice": "left"}, format="json")
        assert submit.status_code == 201
        assert set(submit.json()) == {
            "judgment_id",
            "assignment_id",
            "choice",
            "strength",
            "criteria",
            "rationale",
            "time_spent_ms",
            "created_at",
        }
    assert bodies[True] and bodies[False]
    gold_shapes = {repr(_shape(b)) for b, _ in bodies[True]}
    normal_shapes = {repr(_shape(b)) for b, _ in bodies[False]}
    assert gold_shapes == normal_shapes and len(gold_shapes) == 1
    for (_, gold_headers), (_, normal_headers) in zip(bodies[True], bodies[False]):
        assert set(gold_headers) == set(normal_headers)
    assert len(set(pages[True]) | set(pages[False])) == 1


def test_gold_accuracy_by_annotator_is_one_aggregate(
    make_project, make_user, add_member, make_pairs, site_admin, django_assert_num_queries
):
    project = quality_project(make_project, overlap=1, gold_rate=1.0)
    gold = make_pairs(project, 4, texts=lambda i: (f"Gold A{i}", f"Gold B{i}"))
    _gold(gold[:2], label="a", actor=site_admin)
    _gold(gold[2:3], label="tie", actor=site_admin)
    _gold(gold[3:], label="b", actor=site_admin)
    good, poor = make_user("good"), make_user("poor")
    for user in (good, poor):
        add_member(project, user, "annotator")
    for user, correct in ((good, [True, True, True, False]), (poor, [False, False, True])):
        for right in correct:
            leased = services.assignment_next(project=project, annotator=user).assignment
            pair = Pair.objects.get(pk=leased.pair_id)
            if pair.gold_label == "tie":
                choice = "tie" if right else "both_bad"
            else:
                choice = _answer_for(pair, leased.swapped, right)
            services.judgment_submit(assignment_id=leased.pk, annotator=user, choice=choice)
    with django_assert_num_queries(1):
        stats = gold_accuracy_by_annotator(project)
    assert stats == {good.pk: (3, 4), poor.pk: (1, 3)}


def test_low_gold_accuracy_pauses_with_the_figures_and_an_admin_lifts_it(make_project, make_user, add_member, make_pairs, site_admin):
    project = quality_project(make_project, overlap=1, gold_rate=1.0, gold_min_judged=3, gold_min_accuracy=0.5)
    make_pairs(project, 3)
    gold = make_pairs(project, 5, texts=lambda i: (f"Gold A{i}", f"Gold B{i}"))
    _gold(gold, label="a", actor=site_admin)
    user = make_user("careless")
    add_member(project, user, "annotator")
    outcomes = [True, False, False]  # 1 of 3 = 33% < 50% after the 3rd gold judgment
    for i, right in enumerate(outcomes):
        leased = services.assignment_next(project=project, annotator=user).assignment
        pair = Pair.objects.get(pk=leased.pair_id)
        services.judgment_submit(assignment_id=leased.pk, annotator=user, choice=_answer_for(pair, leased.swapped, right))
        membership = Membership.objects.get(project=project, user=user)
        assert (membership.paused_at is not None) == (i == 2)
    assert "1/3" in membership.pause_reason and "50%" in membership.pause_reason
    entry = AuditEntry.objects.get(action="membership.pause")
    assert entry.actor is None and entry.details["automatic"] and entry.project_id == project.pk

    with pytest.raises(services.Paused) as raised:
        services.assignment_next(project=project, annotator=user)
    assert "1/3" in raised.value.message
    api = _api(user)
    response = api.post(f"/api/v1/projects/{project.pk}/assignments/next")
    assert response.status_code == 403
    assert response.json()["error"] == "paused" and "1/3" in response.json()["detail"]
    assert Assignment.objects.filter(annotator=user).count() == 3  # no new work handed out

    # An annotator cannot lift their own pause; an admin can, through the API.
    assert api.post(f"/api/v1/projects/{project.pk}/members/{user.pk}/unpause").status_code == 403
    admin_api = _api(site_admin)
    lifted = admin_api.post(f"/api/v1/projects/{project.pk}/members/{user.pk}/unpause")
    assert lifted.status_code == 200 and lifted.json()["paused"] is False
    assert AuditEntry.objects.filter(action="membership.unpause", actor=site_admin).count() == 1
    assert api.post(f"/api/v1/projects/{project.pk}/assignments/next").status_code == 200


def test_no_pause_before_the_minimum_or_when_the_minimum_accuracy_is_zero(make_project, make_user, add_member, make_pairs, site_admin):
    for min_judged, min_accuracy in ((5, 0.9), (1, 0.0)):
        project = quality_project(
            make_project, f"p{min_judged}", overlap=1, gold_rate=1.0, gold_min_judged=min_judged, gold_min_accuracy=min_accuracy
        )
        gold = make_pairs(project, 3, texts=lambda i: (f"Gold A{i}", f"Gold B{i}"))
        _gold(gold, label="a", actor=site_admin)
        user = make_user()
        add_member(project, user, "annotator")
        for _ in range(3):
            leased = services.assignment_next(project=project, annotator=user).assignment
            pair = Pair.objects.get(pk=leased.pair_id)
            services.judgment_submit(assignment_id=leased.pk, annotator=user, choice=_answer_for(pair, leased.swapped, False))
        assert Membership.objects.get(project=project, user=user).paused_at is None


def test_manual_pause_needs_an_admin_and_a_reason(project, annotator, make_pairs, site_admin, staff):
    make_pairs(project, 1)
    with pytest.raises(Forbidden):
        services.membership_pause(project=project, user=annotator, reason="spam", actor=staff)
    with pytest.raises(Invalid):
        services.membership_pause(project=project, user=annotator, reason="  ", actor=site_admin)
    response = _api(site_admin).post(
        f"/api/v1/projects/{project.pk}/members/{annotator.pk}/pause", {"reason": "copy-pasted rationales"}, format="json"
    )
    assert response.status_code == 200 and response.json()["paused"] is True
    with pytest.raises(services.Paused):
        services.assignment_next(project=project, annotator=annotator)
    assert AuditEntry.objects.filter(action="membership.pause", actor=site_admin).exists()


def test_marking_gold_needs_staff_a_valid_label_and_is_audited(project, annotator, make_pairs, staff, make_user):
    [pair] = make_pairs(project, 1)
    url = f"/api/v1/pairs/{pair.pk}/gold"
    assert _api(annotator).post(url, {"gold": True, "gold_label": "a"}, format="json").status_code == 403
    assert _api(make_user("outsider")).post(url, {"gold": True, "gold_label": "a"}, format="json").status_code == 404
    bad = _api(staff).post(url, {"gold": True, "gold_label": ""}, format="json")
    assert bad.status_code == 400 and "gold_label" in bad.json()["detail"]
    ok = _api(staff).post(url, {"gold": True, "gold_label": "b"}, format="json")
    assert ok.status_code == 200 and ok.json() == {"pair_id": pair.pk, "is_gold": True, "gold_label": "b"}
    assert AuditEntry.objects.filter(action="pair.gold", target_id=str(pair.pk)).exists()
    # With gold_rate 0 a gold pair is never served; unmarked, it returns to the queue.
    assert services.assignment_next(project=project, annotator=annotator) is None
    assert _api(staff).post(url, {"gold": False}, format="json").json()["is_gold"] is False
    assert services.assignment_next(project=project, annotator=annotator).assignment.pair_id == pair.pk


def test_paused_annotator_page_shows_the_reason(project, annotator, site_admin, client):
    services.membership_pause(project=project, user=annotator, reason="gold accuracy 1/5", actor=site_admin)
    client.force_login(annotator)
    page = client.get(f"/projects/{project.pk}/annotate/").content.decode()
    assert "You are paused in this project" in page and "gold accuracy 1/5" in page


@pytest.mark.django_db(transaction=True)
def test_concurrent_annotators_get_each_gold_pair_at_most_once(make_project, make_user, add_member, make_pairs, site_admin):
    project = quality_project(make_project, overlap=2, gold_rate=0.3)
    make_pairs(project, 20)
    gold = make_pairs(project, 5, texts=lambda i: (f"Gold A{i}", f"Gold B{i}"))
    _gold(gold, actor=site_admin)
    users = [make_user(f"cg{i}") for i in range(8)]
    for user in users:
        add_member(project, user, "annotator")
    errors: list[BaseException] = []

    def annotate(user):
        try:
            while (leased := services.assignment_next(project=project, annotator=user)) is not None:
                services.judgment_submit(assignment_id=leased.assignment.pk, annotator=user, choice="right")
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=annotate, args=(u,)) for u in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    gold_ids = {p.pk for p in gold}
    normal = Pair.objects.exclude(pk__in=gold_ids)
    assert all(p.judgment_count == 2 and p.is_complete for p in normal)
    assert Judgment.objects.filter(pair__in=normal).count() == 40
    per_user_gold = Judgment.objects.filter(pair__in=gold_ids).values_list("annotator_id", "pair_id")
    assert len(per_user_gold) == len(set(per_user_gold)) > 0
    assert all(p.judgment_count == 0 for p in Pair.objects.filter(pk__in=gold_ids))


def test_ready_pairs_import_marks_gold_pairs(project, annotator, site_admin, django_capture_on_commit_callbacks):
    import json

    from feedback_site.annotation.imports import import_file
    from feedback_site.core.errors import Invalid as ServiceInvalid

    lines = [
        {"prompt": "2+2?", "response_a": "4", "response_b": "5", "preferred": "a", "gold": True},
        {"prompt": "Capital of France?", "response_a": "Lyon", "response_b": "Paris"},
    ]
    data = "\n".join(json.dumps(x) for x in lines).encode()
    with django_capture_on_commit_callbacks(execute=True):
        import_file(project=project, actor=site_admin, kind="pairs", filename="p.jsonl", data=data)
    gold = Pair.objects.get(prompt__text="2+2?")
    normal = Pair.objects.get(prompt__text="Capital of France?")
    assert (gold.is_gold, gold.gold_label, gold.is_complete, gold.prelabel) == (True, "a", True, "")
    assert (normal.is_gold, normal.is_complete) == (False, False)
    # The stored HTML was rendered when the import committed (no rendering per request).
    assert gold.response_a.text_html == "<p>4</p>\n" and gold.prompt.text_html == "<p>2+2?</p>\n"
    # A gold pair without its answer is refused with the line, and nothing is stored.
    bad = json.dumps({"prompt": "x", "response_a": "1", "response_b": "2", "gold": True}).encode()
    with pytest.raises(ServiceInvalid) as raised:
        import_file(project=project, actor=site_admin, kind="pairs", filename="bad.jsonl", data=bad)
    assert "line 1" in raised.value.message and "preferred" in raised.value.message
    assert Pair.objects.count() == 2


def test_members_page_shows_paused_annotators_and_unpauses(project, annotator, site_admin, client):
    services.membership_pause(project=project, user=annotator, reason="gold accuracy 2/10 = 20%", actor=site_admin)
    client.force_login(site_admin)
    page = client.get(f"/projects/{project.pk}/members/").content.decode()
    assert "paused" in page and "gold accuracy 2/10 = 20%" in page and "Unpause" in page
    response = client.post(f"/projects/{project.pk}/members/{annotator.pk}/unpause/")
    assert response.status_code == 302
    assert Membership.objects.get(project=project, user=annotator).paused_at is None
    assert "Unpause" not in client.get(f"/projects/{project.pk}/members/").content.decode()
