"""Dashboard reads, aggregated in the database (PostgreSQL, or SQLite for `make run`).

Every function issues a fixed number of queries whatever the project's size: counts, left/right
tallies, medians (`quality.db.Median`), too-fast counts and time buckets are GROUP BY queries.
Agreement and alpha need each overlapping pair's labels, so one compact query fetches
(pair_id, annotator_id, preferred, UTC day number) for pairs with at least two judgments, and the
statistics run over those tuples (`feedback_site.quality.stats`).

Human statistics leave out simulated annotators (`Membership.is_simulated`) everywhere.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta

from django.db import connection
from django.db.models import Count, F, Max, Min, Q, Sum
from django.db.models.functions import Greatest, TruncHour

from feedback_site.annotation.models import DisplayChoice, Judgment, Pair, Preference
from feedback_site.core.hashing import pseudonym
from feedback_site.projects.models import Membership, Project, Role
from feedback_site.quality import stats
from feedback_site.quality.db import EpochDay, Median


def simulated_user_ids(project: Project):
    """A subquery of the project's simulated annotators."""
    return Membership.objects.filter(project=project, is_simulated=True).values("user_id")


def human_judgments(project: Project):
    return Judgment.objects.filter(pair__project=project).exclude(annotator_id__in=simulated_user_ids(project))


def _too_fast_q(project: Project) -> Q | None:
    if not project.min_seconds_per_judgment:
        return None
    return Q(time_spent_ms__lt=round(project.min_seconds_per_judgment * 1000))


def gold_accuracy(project: Project) -> dict[int, tuple[int, int]]:
    """{user_id: (correct, judged)} on gold pairs. Uses the annotation app's definition when it is
    there (feedback_site.annotation.gold), else the same rule in one GROUP BY query."""
    try:
        from feedback_site.annotation.gold import gold_accuracy_by_annotator
    except ImportError:
        gold_accuracy_by_annotator = None
    if gold_accuracy_by_annotator is not None:
        return dict(gold_accuracy_by_annotator(project))
    rows = (
        Judgment.objects.filter(pair__project=project, pair__is_gold=True)
        .exclude(pair__gold_label="")
        .values("annotator_id")
        .annotate(judged=Count("id"), correct=Count("id", filter=Q(preferred=F("pair__gold_label"))))
        .order_by()
    )
    return {row["annotator_id"]: (row["correct"], row["judged"]) for row in rows}


class OverlapRows(list):
    """The rows of `overlap_rows`, with their numpy arrays built once on first use."""

    _arrays = None

    def arrays(self):
        if self._arrays is None:
            self._arrays = _overlap_arrays(self)
        return self._arrays


def overlap_rows(project: Project, *, pair_ids=None) -> list[tuple[int, int, str, int]]:
    """(pair_id, annotator_id, preferred, day) of human judgments on pairs with two or more
    judgments, ordered by pair; day = whole UTC days since 1970-01-01 (an integer: parsing 100,000
    timestamps would cost more than the rest of the dashboard). One query."""
    qs = human_judgments(project).filter(pair__judgment_count__gte=2)
    if pair_ids is not None:
        qs = qs.filter(pair_id__in=pair_ids)
    day = EpochDay("created_at")
    sql, params = (
        qs.order_by("pair_id", "id").annotate(day=day).values_list("pair_id", "annotator_id", "preferred", "day").query.sql_with_params()
    )
    # Straight from the cursor: Django's per-row converters would cost more than the query.
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return OverlapRows(cursor.fetchall())


def annotator_rows(
    project: Project, *, bias_alpha: float = stats.DEFAULT_BIAS_ALPHA, user_id: int | None = None, overlap: list | None = None
) -> list[dict]:
    """One row per human annotator with judgments (or a membership): count, gold accuracy,
    agreement with others, left rate + binomial p + flag, median seconds, too-fast count, pause."""
    too_fast = _too_fast_q(project)
    judgments = human_judgments(project)
    if user_id is not None:
        judgments = judgments.filter(annotator_id=user_id)
    aggregates = {
        "count": Count("id"),
        "left": Count("id", filter=Q(choice=DisplayChoice.LEFT)),
        "right": Count("id", filter=Q(choice=DisplayChoice.RIGHT)),
        "median_ms": Median("time_spent_ms"),
        "first_at": Min("created_at"),
        "last_at": Max("created_at"),
    }
    if too_fast is not None:
        aggregates["too_fast"] = Count("id", filter=too_fast)
    grouped = {
        row["annotator_id"]: row for row in judgments.values("annotator_id", "annotator__username").annotate(**aggregates).order_by()
    }
    memberships = Membership.objects.filter(project=project, is_simulated=False)
    if user_id is not None:
        memberships = memberships.filter(user_id=user_id)
    members = {m["user_id"]: m for m in memberships.values("user_id", "user__username", "role", "paused_at", "pause_reason")}
    gold = gold_accuracy(project)
    if overlap is None:
        if user_id is None:
            overlap = overlap_rows(project)
        else:
            mine = human_judgments(project).filter(annotator_id=user_id).values("pair_id")
            overlap = overlap_rows(project, pair_ids=mine)
    agreement = annotator_agreement_fast(overlap)

    out = []
    for uid in sorted(set(grouped) | {u for u, m in members.items() if m["role"] == Role.ANNOTATOR}):
        row = grouped.get(uid, {})
        member = members.get(uid)
        if member is None and user_id is None and uid not in grouped:
            continue
        bias = stats.position_bias(row.get("left", 0), row.get("right", 0), alpha=bias_alpha)
        correct, judged = gold.get(uid, (0, 0))
        agree, compared = agreement.get(uid, (0, 0))
        median_ms = row.get("median_ms")
        out.append(
            {
                "annotator_id": uid,
                "username": row.get("annotator__username") or (member or {}).get("user__username", ""),
                "role": (member or {}).get("role", ""),
                "count": row.get("count", 0),
                "gold_correct": correct,
                "gold_judged": judged,
                "gold_accuracy": correct / judged if judged else None,
                "agreement_agree": agree,
                "agreement_compared": compared,
                "agreement": agree / compared if compared else None,
                "left": bias.left,
                "right": bias.right,
                "left_rate": bias.left_rate,
                "left_p_value": bias.p_value,
                "position_biased": bias.flagged,
                "median_seconds": median_ms / 1000 if median_ms is not None else None,
                "too_fast": row.get("too_fast", 0),
                "paused": bool(member and member["paused_at"]),
                "paused_at": member["paused_at"] if member else None,
                "pause_reason": member["pause_reason"] if member else "",
                "first_at": row.get("first_at"),
                "last_at": row.get("last_at"),
            }
        )
    return out


def progress(project: Project, *, hours: int = 7 * 24) -> dict:
    """Judged and remaining pairs and judgment slots, and human judgments per hour over the last
    `hours` hours of activity. Two queries."""
    stats_row = Pair.objects.filter(project=project, overlap__gt=0).aggregate(
        pairs=Count("id"),
        complete=Count("id", filter=Q(is_complete=True)),
        started=Count("id", filter=Q(judgment_count__gt=0)),
        judgments=Sum("judgment_count"),
        slots=Sum("overlap"),
        remaining_slots=Sum(Greatest(F("overlap") - F("judgment_count"), 0), filter=Q(is_complete=False)),
    )
    stats_row = {key: value or 0 for key, value in stats_row.items()}
    stats_row["remaining"] = stats_row["pairs"] - stats_row["complete"]
    buckets = list(
        human_judgments(project).annotate(hour=TruncHour("created_at")).values("hour").annotate(n=Count("id")).order_by("-hour")[:hours]
    )
    buckets.reverse()
    stats_row["per_hour"] = [{"hour": b["hour"], "judgments": b["n"]} for b in buckets]
    return stats_row


def label_distribution(project: Project) -> dict:
    """Counts of canonical labels and of clicked sides among human judgments. One query."""
    rows = human_judgments(project).values("preferred", "choice").annotate(n=Count("id")).order_by()
    preferred = {label: 0 for label in Preference.values}
    clicked = {label: 0 for label in DisplayChoice.values}
    for row in rows:
        preferred[row["preferred"]] = preferred.get(row["preferred"], 0) + row["n"]
        clicked[row["choice"]] = clicked.get(row["choice"], 0) + row["n"]
    return {"preferred": preferred, "clicked": clicked}


EPOCH = date(1970, 1, 1)  # a Thursday: weekday (Monday = 0) of day n is (n + 3) % 7


def _overlap_arrays(overlap: list):
    """numpy view of `overlap_rows`: per judgment (unit row, label index, annotator id), the units
    x labels value-count matrix and each unit's latest day."""
    import numpy as np

    row_of: dict[int, int] = {}
    latest: list[int] = []
    rows, labels, annotators = [], [], []
    for pair_id, annotator, label, day in overlap:
        row = row_of.get(pair_id)
        if row is None:
            row = row_of[pair_id] = len(latest)
            latest.append(day)
        elif day > latest[row]:
            latest[row] = day
        rows.append(row)
        labels.append(stats.LABEL_INDEX[label])
        annotators.append(annotator)
    rows_a, labels_a = np.array(rows, dtype=int), np.array(labels, dtype=int)
    matrix = np.zeros((len(latest), len(stats.LABELS)))
    np.add.at(matrix, (rows_a, labels_a), 1)
    return rows_a, labels_a, np.array(annotators, dtype=int), matrix, np.array(latest, dtype=int)


def annotator_agreement_fast(overlap: list) -> dict[int, tuple[int, int]]:
    """Same result as stats.annotator_agreement, vectorised: for each judgment, the others' labels
    on its unit that match (count of its label - 1) out of the others' judgments (n - 1)."""
    import numpy as np

    if not overlap:
        return {}
    rows, labels, annotators, matrix, _ = overlap.arrays() if isinstance(overlap, OverlapRows) else _overlap_arrays(overlap)
    n = matrix.sum(axis=1)[rows]
    agree = matrix[rows, labels] - 1
    keep = n >= 2
    ids, inverse = np.unique(annotators[keep], return_inverse=True)
    agree_sum = np.bincount(inverse, weights=agree[keep], minlength=len(ids))
    compared_sum = np.bincount(inverse, weights=(n - 1)[keep], minlength=len(ids))
    return {int(a): (int(x), int(y)) for a, x, y in zip(ids, agree_sum, compared_sum)}


def agreement_summary(overlap: list, *, bucket: str = "week") -> dict:
    """Project agreement and alpha, and the same per week (or day) of each pair's latest
    judgment. Pure computation over `overlap_rows` output (one value-count matrix, numpy)."""
    import numpy as np

    _, _, _, matrix, latest = overlap.arrays() if isinstance(overlap, OverlapRows) else _overlap_arrays(overlap)
    multi = matrix.sum(axis=1) >= 2
    matrix, days = matrix[multi], latest[multi]
    if bucket == "week":
        days = days - (days + 3) % 7
    over_time = []
    for start in np.unique(days):
        part = matrix[days == start]
        over_time.append(
            {
                "start": EPOCH + timedelta(days=int(start)),
                "pairs": int(part.shape[0]),
                "pairwise_agreement": stats.agreement_from_counts(part),
                "krippendorff_alpha": stats.alpha_from_counts(part),
            }
        )
    return {
        "overlapping_pairs": int(matrix.shape[0]),
        "pairwise_agreement": stats.agreement_from_counts(matrix),
        "krippendorff_alpha": stats.alpha_from_counts(matrix),
        "bucket": bucket,
        "over_time": over_time,
    }


def project_position_bias(rows: list[dict], *, bias_alpha: float = stats.DEFAULT_BIAS_ALPHA) -> stats.PositionBias:
    return stats.position_bias(sum(r["left"] for r in rows), sum(r["right"] for r in rows), alpha=bias_alpha)


def dashboard(project: Project, *, bias_alpha: float = stats.DEFAULT_BIAS_ALPHA, bucket: str = "week") -> dict:
    """Everything the staff dashboard shows, in a constant number of queries."""
    from feedback_site.quality.models import Adjudication

    overlap = overlap_rows(project)
    rows = annotator_rows(project, bias_alpha=bias_alpha, overlap=overlap)
    bias = project_position_bias(rows, bias_alpha=bias_alpha)
    return {
        "progress": progress(project),
        "annotators": rows,
        "agreement": agreement_summary(overlap, bucket=bucket),
        "labels": label_distribution(project),
        "position_bias": {
            "left": bias.left,
            "right": bias.right,
            "left_rate": bias.left_rate,
            "p_value": bias.p_value,
            "flagged": bias.flagged,
            "alpha": bias_alpha,
        },
        "min_seconds_per_judgment": project.min_seconds_per_judgment,
        "adjudicated": Adjudication.objects.filter(pair__project=project).count(),
    }


def my_statistics(project: Project, user, *, bias_alpha: float = stats.DEFAULT_BIAS_ALPHA) -> dict:
    """One annotator's own figures. Agreement is with 'others' in aggregate: no other identity,
    label or count per person leaves this function."""
    rows = annotator_rows(project, bias_alpha=bias_alpha, user_id=user.pk)
    row = rows[0] if rows else None
    keys = (
        "count",
        "gold_correct",
        "gold_judged",
        "gold_accuracy",
        "agreement_agree",
        "agreement_compared",
        "agreement",
        "left",
        "right",
        "left_rate",
        "left_p_value",
        "position_biased",
        "median_seconds",
        "too_fast",
        "paused",
        "pause_reason",
        "first_at",
        "last_at",
    )
    mine = {key: row[key] for key in keys} if row else {key: None for key in keys}
    if row is None:
        mine.update(count=0, too_fast=0, paused=False, pause_reason="", position_biased=False)
    mine["min_seconds_per_judgment"] = project.min_seconds_per_judgment
    return mine


def disagreements(project: Project, *, status: str = "open", limit: int = 50, offset: int = 0) -> tuple[int, list[dict]]:
    """Pairs whose human judgments carry more than one label (tie and both-bad count as labels),
    with each judgment (pseudonymous annotator, choice, canonical label, rationale) and the
    current adjudication. status: open (not adjudicated), adjudicated or all. Three queries."""
    sim = simulated_user_ids(project)
    human = ~Q(judgments__annotator_id__in=sim)
    pairs = (
        Pair.objects.filter(project=project, judgment_count__gte=2)
        .annotate(labels=Count("judgments__preferred", filter=human, distinct=True), humans=Count("judgments", filter=human))
        .filter(labels__gt=1)
    )
    if status == "open":
        pairs = pairs.filter(adjudication__isnull=True)
    elif status == "adjudicated":
        pairs = pairs.filter(adjudication__isnull=False)
    total = pairs.count()
    page = list(
        pairs.select_related("prompt", "response_a", "response_b", "adjudication", "adjudication__decided_by").order_by("id")[
            offset : offset + limit
        ]
    )
    judgments = defaultdict(list)
    for j in (
        human_judgments(project).filter(pair_id__in=[p.pk for p in page]).select_related("guideline_version").order_by("pair_id", "id")
    ):
        judgments[j.pair_id].append(
            {
                "judgment_id": j.pk,
                "annotator": pseudonym(project.pk, j.annotator_id),
                "choice": j.choice,
                "preferred": j.preferred,
                "strength": j.strength or None,
                "rationale": j.rationale,
                "time_spent_ms": j.time_spent_ms,
                "guideline_version": j.guideline_version.number if j.guideline_version else None,
                "created_at": j.created_at,
            }
        )
    out = []
    for pair in page:
        adjudication = getattr(pair, "adjudication", None)
        out.append(
            {
                "pair_id": pair.pk,
                "prompt": pair.prompt.text,
                "response_a": pair.response_a.text,
                "response_b": pair.response_b.text,
                "is_gold": pair.is_gold,
                "judgments": judgments[pair.pk],
                "adjudication": None
                if adjudication is None
                else {
                    "label": adjudication.label,
                    "note": adjudication.note,
                    "decided_by": adjudication.decided_by.username if adjudication.decided_by else None,
                    "decided_at": adjudication.decided_at,
                },
            }
        )
    return total, out
