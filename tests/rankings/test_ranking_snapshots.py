"""Rankings in snapshots: the raw rankings kept (rankings.jsonl, which imports back), the
expansion to pairs as rlhf.rankings documents it (every two answers in different tiers, majority
over annotators, weight 1 / decided pairs), preference rows `datasets` loads and DPO trains on; and
ranking imports: atomic, line-named errors, gold and pre-ranked sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from feedback_site.annotation.models import Prompt, Response
from feedback_site.core.errors import Invalid
from feedback_site.projects.models import ImportBatch
from feedback_site.rankings import services
from feedback_site.rankings.imports import import_rankings
from feedback_site.rankings.models import RankingTask
from feedback_site.snapshots import services as snapshots

from .helpers import make_answer_set, rank_next

pytestmark = pytest.mark.django_db


def rows(snapshot, name: str) -> list[dict]:
    return [json.loads(line) for line in (Path(snapshot.artifact_dir) / name).read_text().splitlines()]


@pytest.fixture
def people(project, make_user, add_member):
    users = [make_user(f"ranker-{i}") for i in range(3)]
    for user in users:
        add_member(project, user, "annotator")
    return users


def test_a_ranking_of_four_with_a_tie_expands_to_the_documented_pairs(project, site_admin, people):
    a, b, c, d = make_answer_set(project, "Best fruit?", ["apple", "banana", "cherry", "date"], split="train")
    services.tasks_create(project=project, actor=site_admin, answer_sets=[[a, b, c, d]], overlap=1)
    rank_next(project, people[0], lambda ids: [[c], [a, d], [b]])  # c best, a and d tie, b worst
    snapshot, _ = snapshots.snapshot_create(project=project, actor=site_admin)
    # C(4, 2) = 6 answer pairs, less the tie (a, d): 5 preferences, each weighing 1/5.
    expanded = rows(snapshot, "ranking_pairs.jsonl")
    assert {(r["chosen_response_id"], r["rejected_response_id"]) for r in expanded} == {(c, a), (c, d), (c, b), (a, b), (d, b)}
    assert all(r["weight"] == pytest.approx(0.2) and r["votes_for"] == 1 and r["basis"] == "rankings" for r in expanded)
    assert (snapshot.ranking_task_count, snapshot.ranking_count, snapshot.ranking_pair_count) == (1, 1, 5)
    assert snapshot.preference_count == 5 and snapshot.pair_count == 0
    prefs = rows(snapshot, "preferences.jsonl")
    assert {(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in prefs} == {
        ("cherry", "apple"),
        ("cherry", "date"),
        ("cherry", "banana"),
        ("apple", "banana"),
        ("date", "banana"),
    }
    assert prefs[0]["prompt"] == [{"role": "user", "content": "Best fruit?"}]
    [raw] = rows(snapshot, "rankings.jsonl")
    assert raw["answers"] == ["apple", "banana", "cherry", "date"] and raw["order"] == [[2], [0, 3], [1]]
    assert raw["annotator"] != people[0].username and sorted(raw["order_shown"]) == [0, 1, 2, 3]


def test_several_rankings_decide_each_pair_by_majority(project, site_admin, people):
    ids = make_answer_set(project, "Order these.", ["one", "two", "three"])
    services.tasks_create(project=project, actor=site_admin, answer_sets=[ids], overlap=3)
    x, y, z = ids
    rank_next(project, people[0], lambda _: [[x], [y], [z]])
    rank_next(project, people[1], lambda _: [[y], [x], [z]])
    rank_next(project, people[2], lambda _: [[x], [y, z]])
    snapshot, _ = snapshots.snapshot_create(project=project, actor=site_admin)
    expanded = {
        (r["chosen_response_id"], r["rejected_response_id"]): (r["votes_for"], r["votes_against"])
        for r in rows(snapshot, "ranking_pairs.jsonl")
    }
    # x>y 2:1, x>z 3:0, y>z 2:0 (the third annotator tied y and z).
    assert expanded == {(x, y): (2, 1), (x, z): (3, 0), (y, z): (2, 0)}


def test_snapshot_files_load_with_datasets_and_train_dpo(project, site_admin, people, tmp_path):
    from datasets import load_dataset

    from rlhf.models import make_tiny_model
    from rlhf.training import train
    from rlhf.training.data import load_preference_records
    from rlhf.training.dpo import DPOConfig

    for i in range(3):
        ids = make_answer_set(project, f"Say something kind ({i}).", [f"You are kind {i}.", f"{i}{i}{i}", f"Nice day {i}."])
        services.tasks_create(project=project, actor=site_admin, answer_sets=[ids], overlap=1)
        rank_next(project, people[0], lambda got: [[got[0], got[2]], [got[1]]])
    snapshot, _ = snapshots.snapshot_create(project=project, actor=site_admin)
    prefs = Path(snapshot.artifact_dir) / "preferences.jsonl"
    dataset = load_dataset("json", data_files=str(prefs), split="train")
    assert len(dataset) == 6 and dataset.column_names == ["prompt", "chosen", "rejected"]
    assert len(load_preference_records(prefs)) == 6
    ranked = load_dataset("json", data_files=str(Path(snapshot.artifact_dir) / "rankings.jsonl"), split="train")
    assert len(ranked) == 3 and ranked[0]["order"] == [[0, 2], [1]]
    policy = make_tiny_model(tmp_path / "policy", seed=0)
    result = train("dpo", prefs, policy, tmp_path / "out", DPOConfig(max_steps=2, batch_size=2, max_length=256))
    assert result.final_step == 2 and (result.artifact_dir / "manifest.json").exists()
    assert result.manifest["train_pairs"] + result.manifest["heldout_pairs"] == 6


def test_eval_prompts_and_unranked_sets_stay_out(project, site_admin, people):
    train_ids = make_answer_set(project, "Train me.", ["t1", "t2", "t3"])
    eval_ids = make_answer_set(project, "Held out.", ["e1", "e2", "e3"], split="eval")
    make_answer_set(project, "Never ranked.", ["n1", "n2", "n3"])
    services.tasks_create(project=project, actor=site_admin, answer_sets=[train_ids, eval_ids], overlap=1)
    rank_next(project, people[0], lambda ids: [[pk] for pk in ids])
    rank_next(project, people[0], lambda ids: [[pk] for pk in ids])
    snapshot, _ = snapshots.snapshot_create(project=project, actor=site_admin)
    assert [r["task_id"] for r in rows(snapshot, "rankings.jsonl")] == [RankingTask.objects.get(response_ids=train_ids).pk]


RANKING_FILE = b"""{"prompt": "Name a colour.", "answers": ["red", "blue", "the sky"], "order": [[0, 1], [2]]}
{"prompt": "Name a colour.", "answers": ["the sky", "red", "blue"], "order": [[1], [2], [0]]}
{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Count."}], "answers": ["1 2 3", {"text": "one"}, "many"]}
{"prompt": "Gold?", "answers": ["right", "half", "wrong"], "order": [[0], [1], [2]], "gold": true}
"""


def test_an_import_makes_tasks_prelabels_and_gold_and_snapshots_expand_the_prelabels(project, site_admin):
    result = import_rankings(project=project, actor=site_admin, filename="rankings.jsonl", data=RANKING_FILE)
    assert (result.tasks, result.queued, result.gold, result.prelabelled) == (3, 1, 1, 1)
    colour = RankingTask.objects.get(prompt__text="Name a colour.")
    red, blue, sky = colour.response_ids
    assert colour.prelabels == [
        {"order": [[red, blue], [sky]], "all_unacceptable": False},
        {"order": [[red], [blue], [sky]], "all_unacceptable": False},
    ]
    assert colour.overlap == 0 and colour.is_complete
    counting = RankingTask.objects.get(prompt__text="Count.")
    assert counting.prompt.system_prompt == "Be brief." and counting.overlap == project.overlap and not counting.is_complete
    gold = RankingTask.objects.get(is_gold=True)
    assert gold.gold_order == [[pk] for pk in gold.response_ids] and gold.prelabels == []
    assert ImportBatch.objects.get().kind == "rankings"

    snapshot, _ = snapshots.snapshot_create(project=project, actor=site_admin)
    expanded = {(r["chosen_response_id"], r["rejected_response_id"]): r["basis"] for r in rows(snapshot, "ranking_pairs.jsonl")}
    # red>sky 2:0, blue>sky 2:0; red vs blue: one tie, one red>blue -> red wins 1:0.
    assert expanded == {(red, sky): "import_label", (blue, sky): "import_label", (red, blue): "import_label"}
    with pytest.raises(Invalid, match="no judged or pre-labelled pairs, rankings or conversation turns"):
        snapshots.snapshot_create(project=project, actor=site_admin, include_prelabelled=False)


def test_an_export_imports_back_into_another_project(project, make_project, site_admin, people):
    ids = make_answer_set(project, "Export me.", ["alpha", "beta", "gamma", "delta"])
    services.tasks_create(project=project, actor=site_admin, answer_sets=[ids], overlap=2)
    rank_next(project, people[0], lambda got: [[got[3]], [got[0], got[1]], [got[2]]])
    rank_next(project, people[1], lambda got: [[got[3]], [got[0]], [got[1]], [got[2]]])
    snapshot, _ = snapshots.snapshot_create(project=project, actor=site_admin)
    exported = (Path(snapshot.artifact_dir) / "rankings.jsonl").read_bytes()
    other = make_project("Copy")
    result = import_rankings(project=other, actor=site_admin, filename="rankings.jsonl", data=exported)
    assert (result.tasks, result.prelabelled) == (1, 1)
    copy, _ = snapshots.snapshot_create(project=other, actor=site_admin)
    texts = lambda snap: sorted((p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in rows(snap, "preferences.jsonl"))  # noqa: E731
    assert texts(copy) == texts(snapshot)


@pytest.mark.parametrize(
    "line, message",
    [
        (b'{"prompt": "Q", "answers": ["a", "b"]}', "line 2: field 'answers': must be a list of 3 to 9 answers"),
        (b'{"prompt": "Q", "answers": ["a", "b", "a"]}', "line 2: field 'answers[2]': repeats answers[0]"),
        (b'{"prompt": "Q", "answers": ["a", "b", "c"], "order": [[0], [1]]}', "line 2: field 'order': answer 2 is missing"),
        (
            b'{"prompt": "Q", "answers": ["a", "b", "c"], "order": [[0, 1], [1, 2]]}',
            "line 2: field 'order': answer 1 is ranked more than once",
        ),
        (b'{"prompt": "Q", "answers": ["a", "b", "c"], "order": [[0], [1], [3]]}', "line 2: field 'order[2]': 3 is not an answer index"),
        (b'{"prompt": "Q", "answers": ["a", "b", "c"], "gold": true}', "line 2: field 'order': a gold task needs its known ranking"),
        (b'{"prompt": "Q", "answers": ["a", "b", "c"], "ordr": [[0]]}', "line 2: field 'ordr': unknown field; did you mean 'order'?"),
        (b'{"answers": ["a", "b", "c"]}', "line 2: field 'prompt': missing required field"),
    ],
)
def test_a_bad_line_is_named_and_nothing_is_imported(project, site_admin, line, message):
    data = b'{"prompt": "Fine.", "answers": ["x", "y", "z"]}\n' + line + b"\n"
    with pytest.raises(Invalid) as raised:
        import_rankings(project=project, actor=site_admin, filename="rankings.jsonl", data=data)
    assert raised.value.message.startswith(message), raised.value.message
    assert not RankingTask.objects.exists() and not Prompt.objects.exists() and not Response.objects.exists()
    assert not ImportBatch.objects.exists()


def test_the_imports_page_and_api_take_ranking_files(project, site_admin, client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=site_admin)[0].key}")
    url = f"/api/v1/projects/{project.pk}/imports/"
    done = api.post(url, {"kind": "rankings", "file": SimpleUploadedFile("r.jsonl", RANKING_FILE)}, format="multipart")
    assert done.status_code == 201 and done.json()["kind"] == "rankings" and done.json()["made"].startswith("3 ranking tasks")
    bad = api.post(url, {"kind": "rankings", "file": SimpleUploadedFile("r.jsonl", b'{"prompt": 1}\n')}, format="multipart")
    assert bad.status_code == 400 and bad.json()["detail"].startswith("line 1: field 'prompt'")
    assert RankingTask.objects.count() == 3

    client.force_login(site_admin)
    page = client.post(
        f"/projects/{project.pk}/imports/",
        {
            "kind": "rankings",
            "file": SimpleUploadedFile("more.jsonl", b'{"prompt": "New?", "answers": ["a", "b", "c"]}\n'),
            "queue_for_annotation": "on",
        },
        follow=True,
    )
    assert page.status_code == 200 and "Imported 1 prompt and 1 ranking task (1 queued" in page.content.decode()
    assert RankingTask.objects.count() == 4


def test_the_snapshots_page_offers_the_ranking_files_and_the_api_serves_them(project, site_admin, people, client):
    ids = make_answer_set(project, "Page?", ["p1", "p2", "p3"])
    services.tasks_create(project=project, actor=site_admin, answer_sets=[ids], overlap=1)
    rank_next(project, people[0], lambda got: [[got[1]], [got[0], got[2]]])
    snapshot, _ = snapshots.snapshot_create(project=project, actor=site_admin)
    client.force_login(site_admin)
    html = client.get(f"/projects/{project.pk}/snapshots/").content.decode()
    assert "file=rankings" in html and "file=ranking_pairs" in html and "1 ranking of 1 answer set → 2 pairs" in html
    assert 'id="ranker-table"' in html and f'data-annotator="{people[0].username}"' in html
    download = client.get(f"/api/v1/snapshots/{snapshot.pk}/download?file=ranking_pairs")
    assert download.status_code == 200 and len(b"".join(download.streaming_content).splitlines()) == 2
