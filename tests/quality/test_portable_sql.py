"""The dashboard's database expressions mean the same on PostgreSQL and SQLite (`make test` runs
this module on both): the median interpolates like percentile_cont(0.5) and ignores NULLs, and a
judgment's day is the floor of its UTC time (23:59 stays on its day; `::int` once rounded it up)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from feedback_site.annotation.models import Judgment
from feedback_site.quality import selectors
from feedback_site.quality.db import EpochDay, Median

pytestmark = pytest.mark.django_db


@pytest.fixture
def judged(project, team, make_pairs, judge):
    pairs = make_pairs(project, 4, overlap=3)
    at = [
        datetime(2026, 3, 2, 0, 0, tzinfo=UTC),
        datetime(2026, 3, 2, 12, 0, tzinfo=UTC),
        datetime(2026, 3, 2, 23, 59, 59, 999000, tzinfo=UTC),
        datetime(2026, 3, 3, 0, 0, 0, 1000, tzinfo=UTC),
    ]
    judge(
        [
            dict(pair=p, user=team["alice"], preferred="a", time_ms=ms, at=when)
            for p, ms, when in zip(pairs, (1_000, 4_000, 2_000, None), at)
        ]
    )
    judge([dict(pair=pairs[0], user=team["bob"], preferred="b", time_ms=9_000, at=at[0])])
    return pairs


def test_median_interpolates_and_skips_nulls(judged, team):
    alice = Judgment.objects.filter(annotator=team["alice"]).aggregate(m=Median("time_spent_ms"))["m"]
    assert alice == 2_000.0  # 1,000 2,000 4,000 (the NULL is left out)
    everyone = Judgment.objects.aggregate(m=Median("time_spent_ms"))["m"]
    assert everyone == 3_000.0  # 1,000 2,000 | 4,000 9,000
    assert Judgment.objects.none().aggregate(m=Median("time_spent_ms"))["m"] is None


def test_epoch_day_is_the_floor_of_the_utc_day(judged, team):
    days = sorted(Judgment.objects.filter(annotator=team["alice"]).annotate(day=EpochDay("created_at")).values_list("day", flat=True))
    first = (date(2026, 3, 2) - selectors.EPOCH).days
    assert days == [first, first, first, first + 1]


def test_annotator_rows_on_this_database(project, judged, team):
    rows = {r["username"]: r for r in selectors.annotator_rows(project)}
    assert rows["alice"]["median_seconds"] == 2.0 and rows["bob"]["median_seconds"] == 9.0
    assert rows["alice"]["agreement_compared"] == 1 and rows["alice"]["agreement_agree"] == 0
