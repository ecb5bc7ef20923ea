"""Staff API for training runs: launch (config validated before queueing), progress, metrics, cancel.

A launch names its data by method: `snapshot_id` (a preference snapshot) for reward, dpo, ppo,
rloo and grpo; `demonstration_snapshot_id` for sft; `rating_snapshot_id` (thumbs up / down) or
`snapshot_id` for kto."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from feedback_site.core.errors import Invalid
from feedback_site.demonstrations.models import DemonstrationSnapshot
from feedback_site.projects.permissions import STAFF_ROLES, project_for
from feedback_site.ratings.models import RatingSnapshot
from feedback_site.registry.models import ModelKind, ModelVersion
from feedback_site.snapshots.models import Snapshot
from feedback_site.training import services
from feedback_site.training.models import Method, TrainingMetric, TrainingRun


class TrainingRunOut(serializers.ModelSerializer):
    snapshot_id = serializers.IntegerField(allow_null=True)
    demonstration_snapshot_id = serializers.IntegerField(allow_null=True)
    rating_snapshot_id = serializers.IntegerField(allow_null=True)
    parent_id = serializers.IntegerField()
    reward_model_id = serializers.IntegerField(allow_null=True)
    output_version_id = serializers.IntegerField(allow_null=True)

    class Meta:
        model = TrainingRun
        fields = [
            "id",
            "project_id",
            "method",
            "snapshot_id",
            "demonstration_snapshot_id",
            "rating_snapshot_id",
            "parent_id",
            "reward_model_id",
            "config",
            "config_hash",
            "status",
            "cancel_requested",
            "step",
            "total_steps",
            "latest_metrics",
            "eta_seconds",
            "message",
            "log_tail",
            "attempts",
            "output_version_id",
            "created_at",
            "started_at",
            "finished_at",
        ]


class TrainingRunIn(serializers.Serializer):
    method = serializers.ChoiceField(choices=Method.values)
    # Exactly one kind of data, by method (sft: demonstration_snapshot_id; kto: rating_snapshot_id or
    # snapshot_id); the service says which is missing.
    snapshot_id = serializers.IntegerField(required=False, allow_null=True, default=None)
    demonstration_snapshot_id = serializers.IntegerField(required=False, allow_null=True, default=None)
    rating_snapshot_id = serializers.IntegerField(required=False, allow_null=True, default=None)
    parent_id = serializers.IntegerField(required=False, allow_null=True, default=None)
    reward_model_id = serializers.IntegerField(required=False, allow_null=True, default=None)
    config = serializers.DictField(required=False, default=dict)


def _version(project, version_id, kind, field):
    if version_id is None:
        return None
    version = ModelVersion.objects.filter(pk=version_id, project=project, kind=kind).first()
    if version is None:
        raise Invalid(f"{field} {version_id} is not a {kind} version of this project", code=f"bad_{field}")
    return version


@extend_schema(methods=["GET"], responses=TrainingRunOut(many=True), summary="Training runs of a project")
@extend_schema(
    methods=["POST"],
    request=TrainingRunIn,
    responses={201: TrainingRunOut, 200: TrainingRunOut},
    summary="Launch training (200 with the existing run when the same one is already queued or running)",
)
@api_view(["GET", "POST"])
def training_run_list(request, project_id: int):
    project = project_for(request.user, project_id, STAFF_ROLES)
    if request.method == "POST":
        data = TrainingRunIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        snapshot = demonstration_snapshot = rating_snapshot = None
        if values["snapshot_id"] is not None:
            snapshot = Snapshot.objects.filter(pk=values["snapshot_id"], project=project).first()
            if snapshot is None:
                raise Invalid(f"snapshot_id {values['snapshot_id']} is not a snapshot of this project", code="bad_snapshot")
        if values["demonstration_snapshot_id"] is not None:
            demonstration_snapshot = DemonstrationSnapshot.objects.filter(pk=values["demonstration_snapshot_id"], project=project).first()
            if demonstration_snapshot is None:
                raise Invalid(
                    f"demonstration_snapshot_id {values['demonstration_snapshot_id']} is not a demonstration snapshot of this project",
                    code="bad_demonstration_snapshot",
                )
        if values["rating_snapshot_id"] is not None:
            rating_snapshot = RatingSnapshot.objects.filter(pk=values["rating_snapshot_id"], project=project).first()
            if rating_snapshot is None:
                raise Invalid(
                    f"rating_snapshot_id {values['rating_snapshot_id']} is not a rating snapshot of this project",
                    code="bad_rating_snapshot",
                )
        run, created = services.training_launch(
            project=project,
            actor=request.user,
            method=values["method"],
            snapshot=snapshot,
            demonstration_snapshot=demonstration_snapshot,
            rating_snapshot=rating_snapshot,
            parent=_version(project, values["parent_id"], ModelKind.POLICY, "parent"),
            reward_model=_version(project, values["reward_model_id"], ModelKind.REWARD, "reward_model"),
            config=values["config"],
        )
        return Response(TrainingRunOut(run).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
    return Response(TrainingRunOut(TrainingRun.objects.filter(project=project)[:200], many=True).data)


@extend_schema(responses=TrainingRunOut, summary="One training run with live progress")
@api_view(["GET"])
def training_run_detail(request, run_id: int):
    return Response(TrainingRunOut(services.training_get(run_id=run_id, actor=request.user)).data)


class MetricPointOut(serializers.ModelSerializer):
    class Meta:
        model = TrainingMetric
        fields = ["step", "values", "created_at"]


@extend_schema(responses=MetricPointOut(many=True), summary="Metric time series of a run (for charts); ?after=STEP for new points")
@api_view(["GET"])
def training_run_metrics(request, run_id: int):
    run = services.training_get(run_id=run_id, actor=request.user)
    after = request.query_params.get("after")
    points = TrainingMetric.objects.filter(run=run)
    if after is not None:
        try:
            points = points.filter(step__gt=int(after))
        except ValueError:
            raise Invalid("after must be an integer step", code="bad_after") from None
    return Response(MetricPointOut(points.order_by("step", "id")[:5000], many=True).data)


@extend_schema(request=None, responses=TrainingRunOut, summary="Cancel at the next step (the last checkpoint is kept)")
@api_view(["POST"])
def training_run_cancel(request, run_id: int):
    run = services.training_get(run_id=run_id, actor=request.user)
    return Response(TrainingRunOut(services.training_cancel(run=run, actor=request.user)).data)
