"""Bradley–Terry leaderboard of a project's policy versions, one board per source of comparisons.

* **human**: judgments by people on pairs whose two responses were written by two different
  policy versions (a blind A/B campaign or a generation run mixing versions). Judgments by
  simulated annotators (`Membership.is_simulated`) are kept out of it and form their own board.
* **automated**: the per-prompt outcomes of succeeded policy evaluation runs (policy vs baseline,
  judged by a reward model).

Outcomes: preferred A / B is a win for that side's version, a tie is half a win each, "both bad"
is left out (it says nothing about which is better). Ratings and intervals come from
`rlhf.stats.bradley_terry_bootstrap` (MM algorithm, one virtual tie per version against a
phantom of strength 1, percentile bootstrap over comparisons).
"""

from __future__ import annotations

from feedback_site.annotation.models import Judgment, Preference
from feedback_site.evaluation.models import EvaluationKind, EvaluationSample, EvaluationStatus, SampleSet
from feedback_site.projects.models import Membership, Project
from feedback_site.registry.models import ModelKind, ModelVersion
from rlhf.stats import bradley_terry_bootstrap

OUTCOME = {Preference.A: 1.0, Preference.B: 0.0, Preference.TIE: 0.5}


def human_comparisons(project: Project) -> dict[str, list[tuple[int, int, float]]]:
    simulated = set(Membership.objects.filter(project=project, is_simulated=True).values_list("user_id", flat=True))
    rows = (
        Judgment.objects.filter(
            pair__project=project, pair__response_a__model_version__isnull=False, pair__response_b__model_version__isnull=False
        )
        .filter(pair__response_a__model_version__kind=ModelKind.POLICY, pair__response_b__model_version__kind=ModelKind.POLICY)
        .values_list("annotator_id", "preferred", "pair__response_a__model_version_id", "pair__response_b__model_version_id")
    )
    out: dict[str, list[tuple[int, int, float]]] = {"human": [], "simulated": []}
    for annotator, preferred, a, b in rows.iterator(chunk_size=5000):
        if a == b or preferred not in OUTCOME:
            continue
        out["simulated" if annotator in simulated else "human"].append((a, b, OUTCOME[preferred]))
    return out


def automated_comparisons(project: Project) -> list[tuple[int, int, float]]:
    rows = EvaluationSample.objects.filter(
        run__project=project,
        run__kind=EvaluationKind.POLICY,
        run__status=EvaluationStatus.SUCCEEDED,
        sample_set=SampleSet.EVAL,
        outcome__isnull=False,
    ).values_list("run__policy_id", "run__baseline_id", "outcome")
    return [(p, b, float(o)) for p, b, o in rows.iterator(chunk_size=5000) if p != b]


def _board(comparisons, versions: dict[int, ModelVersion], n_resamples: int, seed: int) -> dict:
    if not comparisons:
        return {"n": 0, "rows": []}
    result = bradley_terry_bootstrap(comparisons, n_resamples=n_resamples, seed=seed, prior=1.0)
    fit = result["fit"]
    rows = []
    for version_id in fit.items:
        version = versions.get(version_id)
        low, high = result["intervals"][version_id]
        rows.append(
            {
                "version_id": version_id,
                "number": version.number if version else None,
                "name": version.name if version else str(version_id),
                "rating": fit.ratings[version_id],
                "low": low,
                "high": high,
                "games": fit.games[version_id],
            }
        )
    rows.sort(key=lambda r: -r["rating"])
    return {"n": result["n"], "n_resamples": n_resamples, "confidence": result["confidence"], "rows": rows}


def leaderboard(project: Project, *, n_resamples: int = 200, seed: int = 0) -> dict:
    versions = {v.pk: v for v in ModelVersion.objects.filter(project=project, kind=ModelKind.POLICY)}
    human = human_comparisons(project)
    boards = {
        "human": _board(human["human"], versions, n_resamples, seed),
        "automated": _board(automated_comparisons(project), versions, n_resamples, seed),
        "simulated": _board(human["simulated"], versions, n_resamples, seed),
    }
    return {
        "project_id": project.pk,
        "boards": boards,
        "current_policy_id": project.current_policy_id,
        "method": "Bradley-Terry (MM), ratings 1000 + 400*log10(strength), percentile bootstrap CIs",
    }
