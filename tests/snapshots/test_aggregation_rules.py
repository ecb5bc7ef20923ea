"""Aggregation rules and exclusions on constructed cases; adjudicated labels always win."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from django.utils import timezone

from feedback_site.annotation.models import Pair
from feedback_site.core.errors import Invalid
from feedback_site.projects.models import Membership
from feedback_site.quality.services import adjudicate
from feedback_site.snapshots.services import snapshot_create
from tests.quality.conftest import bulk_judge

pytestmark = pytest.mark.django_db


def _rows(snapshot, name):
    return [json.loads(line) for line in (Path(snapshot.artifact_dir) / name).read_text().splitlines()]


def _outcomes(snapshot) -> dict[int, str | None]:
    return {row["pair_id"]: row["outcome"] for row in _rows(snapshot, "pairs.jsonl")}


@pytest.fixture
def people(project, make_user, add_member):
    def make(*names, simulated=()):
        users = {}
        for name in names:
            users[name] = make_user(name)
            add_member(project, users[name], "annotator")
            if name in simulated:
                Membership.objects.filter(project=project, user=users[name]).update(is_simulated=True)
        return users

    return make


def test_gold_weighted_follows_the_accurate_annotator_where_majority_does_not(project, people, make_pairs, site_admin):
    u = people("good", "bad1", "bad2")
    gold = make_pairs(project, 4, overlap=3)
    Pair.objects.filter(pk__in=[p.pk for p in gold]).update(is_gold=True, gold_label="a")
    bulk_judge(
        [dict(pair=p, user=u["good"], preferred="a") for p in gold]
        + [dict(pair=p, user=u[b], preferred="b") for p in gold for b in ("bad1", "bad2")]
    )
    (target,) = make_pairs(project, 1, overlap=3)
    bulk_judge(
        [
            dict(pair=target, user=u["good"], preferred="b"),
            dict(pair=target, user=u["bad1"], preferred="a"),
            dict(pair=target, user=u["bad2"], preferred="a"),
        ]
    )
    majority, _ = snapshot_create(project=project, actor=site_admin, aggregation="majority")
    weighted, _ = snapshot_create(project=project, actor=site_admin, aggregation="gold_weighted")
    # good: (4+1)/(4+2) = 0.833 for b; bad1 + bad2: 2 * (0+1)/(4+2) = 0.333 for a.
    assert _outcomes(majority)[target.pk] == "a"
    assert _outcomes(weighted)[target.pk] == "b"
    assert weighted.aggregation == "gold_weighted" and weighted.content_hash != majority.content_hash
    manifest = json.loads((Path(weighted.artifact_dir) / "manifest.json").read_text())
    assert manifest["aggregation"] == "gold_weighted" and manifest["options"]["include_simulated"] is False


def test_dawid_skene_recovers_labels_a_majority_of_guessers_gets_wrong(project, people, make_pairs, site_admin):
    u = people("g1", "g2", "g3", "bad1", "bad2")
    rng = random.Random(0)
    pairs = make_pairs(project, 40, overlap=3)
    truth = {p.pk: rng.choice("ab") for p in pairs}
    flip = {"a": "b", "b": "a"}
    rows = []
    for p in pairs[:30]:
        rows += [dict(pair=p, user=u[g], preferred=truth[p.pk]) for g in ("g1", "g2", "g3")]
        rows += [dict(pair=p, user=u[b], preferred=rng.choice("ab")) for b in ("bad1", "bad2")]
    for p in pairs[30:]:
        rows += [
            dict(pair=p, user=u["g1"], preferred=truth[p.pk]),
            dict(pair=p, user=u["bad1"], preferred=flip[truth[p.pk]]),
            dict(pair=p, user=u["bad2"], preferred=flip[truth[p.pk]]),
        ]
    bulk_judge(rows)
    ds, _ = snapshot_create(project=project, actor=site_admin, aggregation="dawid_skene")
    majority, _ = snapshot_create(project=project, actor=site_admin, aggregation="majority")
    assert all(_outcomes(ds)[p.pk] == truth[p.pk] for p in pairs)
    assert all(_outcomes(majority)[p.pk] != truth[p.pk] for p in pairs[30:])
    assert ds.preference_count == 40


@pytest.mark.parametrize("rule", ["majority", "gold_weighted", "dawid_skene"])
def test_an_adjudicated_label_wins_under_every_rule(project, people, make_pairs, site_admin, rule):
    u = people("x", "y", "z")
    agreed, split = make_pairs(project, 2, overlap=3)
    bulk_judge(
        [dict(pair=agreed, user=u[n], preferred="a") for n in ("x", "y", "z")]
        + [dict(pair=split, user=u["x"], preferred="a"), dict(pair=split, user=u["y"], preferred="tie")]
    )
    adjudicate(pair_id=agreed.pk, actor=site_admin, label="b", note="A is factually wrong")
    adjudicate(pair_id=split.pk, actor=site_admin, label="a")
    snapshot, _ = snapshot_create(project=project, actor=site_admin, aggregation=rule)
    pairs = {row["pair_id"]: row for row in _rows(snapshot, "pairs.jsonl")}
    assert pairs[agreed.pk]["outcome"] == "b" and pairs[agreed.pk]["outcome_basis"] == "adjudication"
    assert pairs[split.pk]["outcome"] == "a"
    prefs = _rows(snapshot, "preferences.jsonl")
    chosen = {row["chosen"][0]["content"] for row in prefs}
    assert chosen == {agreed.response_b.text, split.response_a.text}
    assert snapshot.adjudicated_count == 2


def test_exclusions_keep_raw_judgments_but_take_away_their_votes(project, people, make_pairs, site_admin):
    project.min_seconds_per_judgment = 2
    project.save(update_fields=["min_seconds_per_judgment"])
    u = people("alice", "bob", "carol", "paula", "lefty", "robot1", "robot2", simulated=("robot1", "robot2"))
    Membership.objects.filter(project=project, user=u["paula"]).update(paused_at=timezone.now(), pause_reason="gold")
    sim, fast, paused, biased = make_pairs(project, 4, overlap=3)
    # lefty clicks "left" on 12 other pairs: p = 2 / 4096, flagged at 0.05
    lefts = make_pairs(project, 12, overlap=1)
    rows = [dict(pair=p, user=u["lefty"], preferred="a", swapped=False) for p in lefts]
    rows += [
        dict(pair=sim, user=u["alice"], preferred="b"),
        dict(pair=sim, user=u["robot1"], preferred="a"),
        dict(pair=sim, user=u["robot2"], preferred="a"),
    ]
    rows += [
        dict(pair=fast, user=u["alice"], preferred="a", time_ms=9000),
        dict(pair=fast, user=u["bob"], preferred="b", time_ms=900),
        dict(pair=fast, user=u["carol"], preferred="b", time_ms=1500),
    ]
    rows += [dict(pair=paused, user=u["alice"], preferred="a"), dict(pair=paused, user=u["paula"], preferred="b")]
    rows += [dict(pair=biased, user=u["alice"], preferred="a"), dict(pair=biased, user=u["lefty"], preferred="b", swapped=True)]
    bulk_judge(rows)

    default, _ = snapshot_create(project=project, actor=site_admin)
    out = _outcomes(default)
    assert out[sim.pk] == "b"  # simulated judgments are not used by default
    assert out[fast.pk] == "b" and out[paused.pk] is None and out[biased.pk] is None  # a vs b: level
    raw = _rows(default, "judgments.jsonl")
    assert len(raw) == default.judgment_count == 12 + 10
    assert sorted(r["excluded"] for r in raw if r["pair_id"] == sim.pk) == [[], ["simulated"], ["simulated"]]
    assert default.excluded_judgment_count == 2

    strict, _ = snapshot_create(
        project=project, actor=site_admin, options={"exclude_too_fast": True, "exclude_paused": True, "exclude_position_biased": True}
    )
    out = _outcomes(strict)
    assert out[fast.pk] == "a" and out[paused.pk] == "a" and out[biased.pk] == "a"
    raw = {r["judgment_id"]: r for r in _rows(strict, "judgments.jsonl")}
    assert len(raw) == 22  # nothing leaves the raw file
    reasons = sorted(tuple(r["excluded"]) for r in raw.values() if r["excluded"])
    assert reasons.count(("too_fast",)) == 2 and ("paused",) in reasons
    assert reasons.count(("position_biased",)) == 13 and reasons.count(("simulated",)) == 2
    paused_pair = {r["pair_id"]: r for r in _rows(strict, "pairs.jsonl")}[paused.pk]
    assert paused_pair["num_judgments"] == 2 and paused_pair["num_used_judgments"] == 1
    assert strict.options["exclude_too_fast"] and strict.content_hash != default.content_hash

    with_sim, _ = snapshot_create(project=project, actor=site_admin, options={"include_simulated": True})
    assert _outcomes(with_sim)[sim.pk] == "a"
    again, created = snapshot_create(project=project, actor=site_admin, options={"include_simulated": True})
    assert not created and again.pk == with_sim.pk
    with pytest.raises(Invalid, match="unknown snapshot option"):
        snapshot_create(project=project, actor=site_admin, options={"exclude_everyone": True})


def test_api_takes_rule_and_options(client, project, people, make_pairs, site_admin):
    u = people("x", "y")
    (pair,) = make_pairs(project, 1, overlap=2)
    bulk_judge([dict(pair=pair, user=u["x"], preferred="a"), dict(pair=pair, user=u["y"], preferred="a")])
    client.force_login(site_admin)
    url = f"/api/v1/projects/{project.pk}/snapshots/"
    made = client.post(url, {"aggregation": "dawid_skene", "exclude_paused": True}, content_type="application/json")
    assert made.status_code == 202, made.content
    body = made.json()
    assert body["aggregation"] == "dawid_skene" and body["options"]["exclude_paused"] is True
    assert body["status"] == "pending" and body["content_hash"] == ""
    # The worker's job, run here in-process (tests/snapshots/test_background_build.py runs it
    # through a real worker).
    from feedback_site.snapshots.services import snapshot_build

    assert snapshot_build(body["id"]).status == "ready"
    ready = client.get(f"/api/v1/snapshots/{body['id']}/").json()
    assert ready["status"] == "ready" and ready["preference_count"] == 1 and len(ready["content_hash"]) == 64
    bad = client.post(url, {"aggregation": "median"}, content_type="application/json")
    assert bad.status_code == 400


def test_snapshot_page_takes_rule_and_exclusions(client, project, people, make_pairs, site_admin):
    from feedback_site.snapshots.models import Snapshot

    u = people("x", "robot", simulated=("robot",))
    (pair,) = make_pairs(project, 1, overlap=2)
    bulk_judge([dict(pair=pair, user=u["x"], preferred="a"), dict(pair=pair, user=u["robot"], preferred="b")])
    client.force_login(site_admin)
    page = client.get(f"/projects/{project.pk}/snapshots/").content.decode()
    assert "Dawid–Skene" in page and 'name="exclude_too_fast"' in page
    response = client.post(f"/projects/{project.pk}/snapshots/", {"aggregation": "gold_weighted", "exclude_paused": "on"})
    assert response.status_code == 302
    from feedback_site.snapshots.services import snapshot_build

    snapshot = snapshot_build(Snapshot.objects.get(project=project).pk)  # the worker's job, in-process
    assert snapshot.aggregation == "gold_weighted"
    assert snapshot.options["exclude_paused"] is True and snapshot.options["include_simulated"] is False
    assert snapshot.excluded_judgment_count == 1 and snapshot.preference_count == 1
    assert "Weighted by gold accuracy" in client.get(f"/projects/{project.pk}/snapshots/").content.decode()
