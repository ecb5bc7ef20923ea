"""`manage.py seed_load_test`: counts, output shape, working tokens, bulk (not per-row) inserts."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from feedback_site.annotation.models import Pair, Prompt, Response
from feedback_site.projects.models import Membership, Project, Role

pytestmark = pytest.mark.django_db

User = get_user_model()


def _seed(tmp_path, name="out.json", **options) -> dict:
    out = tmp_path / name
    options.setdefault("stdout", open("/dev/null", "w"))
    call_command("seed_load_test", out=str(out), **options)
    return json.loads(out.read_text())


def test_creates_the_project_pairs_annotators_and_tokens(tmp_path):
    data = _seed(tmp_path, pairs=25, annotators=7, overlap=3, project_name="Seeded", batch_size=10)

    assert set(data) == {"project_id", "tokens", "annotators", "pairs", "overlap"}
    assert data["pairs"] == 25 and data["overlap"] == 3
    assert isinstance(data["project_id"], int)
    assert len(data["tokens"]) == len(data["annotators"]) == 7
    assert len(set(data["tokens"])) == 7 and all(isinstance(t, str) and len(t) == 40 for t in data["tokens"])

    project = Project.objects.get(pk=data["project_id"])
    assert project.name == "Seeded" and project.overlap == 3
    pairs = Pair.objects.filter(project=project)
    assert pairs.count() == 25
    assert set(pairs.values_list("overlap", "judgment_count", "is_complete").distinct()) == {(3, 0, False)}
    assert Prompt.objects.filter(project=project).count() == 25
    assert Response.objects.filter(prompt__project=project).count() == 50
    # Every pair compares two different responses of its own prompt.
    for pair in pairs.select_related("response_a", "response_b"):
        assert pair.response_a_id != pair.response_b_id
        assert pair.response_a.prompt_id == pair.response_b.prompt_id == pair.prompt_id
        assert 100 < len(pair.response_a.text) < 2000

    members = Membership.objects.filter(project=project, role=Role.ANNOTATOR).select_related("user")
    assert sorted(m.user.username for m in members) == sorted(data["annotators"])
    # tokens[i] belongs to annotators[i]
    owners = dict(Token.objects.filter(key__in=data["tokens"]).values_list("key", "user__username"))
    assert [owners[t] for t in data["tokens"]] == data["annotators"]
    # The project owner is a staff user and the project's admin.
    assert Membership.objects.get(project=project, role=Role.ADMIN).user.is_staff


def test_tokens_work_against_the_queue_api(tmp_path):
    data = _seed(tmp_path, pairs=3, annotators=2, overlap=2)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {data['tokens'][0]}")

    response = client.post(f"/api/v1/projects/{data['project_id']}/assignments/next")
    assert response.status_code == 200, response.content
    body = response.json()
    assert {"assignment_id", "prompt", "left", "right", "expires_at"} <= set(body)
    assert body["left"]["text"] != body["right"]["text"]

    submitted = client.post(f"/api/v1/assignments/{body['assignment_id']}/judgment", {"choice": "tie"}, format="json")
    assert submitted.status_code == 201, submitted.content

    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Token {data['tokens'][1]}")
    assert other.post(f"/api/v1/projects/{data['project_id']}/assignments/next").status_code == 200


def test_passwords_share_one_hash_and_cannot_be_guessed(tmp_path):
    data = _seed(tmp_path, pairs=0, annotators=3, overlap=1)
    hashes = set(User.objects.filter(username__in=data["annotators"]).values_list("password", flat=True))
    assert len(hashes) == 1
    user = User.objects.get(username=data["annotators"][0])
    assert user.has_usable_password() and not user.check_password("") and not user.check_password(user.username)


def _statements(tmp_path, **options) -> int:
    # Counted with an execute wrapper: the command clears Django's query log between batches.
    count = 0

    def counting(execute, sql, params, many, context):
        nonlocal count
        count += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(counting):
        _seed(tmp_path, **options)
    return count


def test_inserts_are_batched_not_per_row(tmp_path):
    _seed(tmp_path, name="first.json", pairs=1, annotators=1, overlap=1)  # creates the shared owner
    small = _statements(tmp_path, name="a.json", pairs=5, annotators=5, overlap=1, batch_size=1000)
    large = _statements(tmp_path, name="b.json", pairs=400, annotators=300, overlap=1, batch_size=1000)
    # Sixty times the rows (about 2,500 more rows), the same statements: nothing is saved one row
    # at a time. SQLite takes at most 999 parameters a statement, so Django splits each bulk insert
    # there into batches of 999 // columns rows: a few more statements, never one per row.
    if connection.vendor == "sqlite":
        assert large - small < 2_500 // 50
    else:
        assert large == small
        assert large < 40


def test_running_twice_makes_a_second_project_and_reuses_the_owner(tmp_path):
    first = _seed(tmp_path, name="a.json", pairs=2, annotators=2, overlap=1)
    second = _seed(tmp_path, name="b.json", pairs=2, annotators=2, overlap=1)
    assert first["project_id"] != second["project_id"]
    assert not set(first["annotators"]) & set(second["annotators"])
    assert User.objects.filter(username="loadtest-owner").count() == 1


def test_bad_overlap_is_refused_and_leaves_nothing(tmp_path):
    with pytest.raises(CommandError, match="overlap"):
        _seed(tmp_path, pairs=5, annotators=2, overlap=0)
    assert not Project.objects.exists()
    assert not Pair.objects.exists()
    assert not (tmp_path / "out.json").exists()
