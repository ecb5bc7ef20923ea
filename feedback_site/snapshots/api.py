"""Staff API for preference snapshots and their downloads."""

from __future__ import annotations

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from feedback_site.core.errors import NotFound
from feedback_site.projects.permissions import STAFF_ROLES, project_for, require_role
from feedback_site.snapshots import services
from feedback_site.snapshots.models import Snapshot


class SnapshotOut(serializers.ModelSerializer):
    class Meta:
        model = Snapshot
        fields = [
            "id",
            "project_id",
            "number",
            "content_hash",
            "aggregation",
            "include_prelabelled",
            "pair_count",
            "preference_count",
            "judgment_count",
            "dropped_count",
            "ranking_task_count",
            "ranking_count",
            "ranking_pair_count",
            "conversation_pair_count",
            "files",
            "note",
            "created_at",
            "options",
            "excluded_judgment_count",
            "adjudicated_count",
            "status",
            "progress_done",
            "progress_total",
            "error",
            "finished_at",
        ]


class SnapshotIn(serializers.Serializer):
    aggregation = serializers.ChoiceField(choices=services.AGGREGATION_RULES, default="majority")
    include_prelabelled = serializers.BooleanField(default=True)
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)
    exclude_too_fast = serializers.BooleanField(default=False, help_text="Leave out judgments under the project's minimum time.")
    exclude_position_biased = serializers.BooleanField(
        default=False, help_text="Leave out annotators whose left rate fails the binomial test."
    )
    exclude_paused = serializers.BooleanField(default=False, help_text="Leave out annotators who are paused.")
    include_simulated = serializers.BooleanField(default=False, help_text="Use simulated annotators' judgments (default: not used).")
    bias_alpha = serializers.FloatField(default=0.05, min_value=0.0001, max_value=0.5, help_text="Significance level of the bias test.")

    def validate(self, attrs):
        option_keys = set(services.DEFAULT_OPTIONS)
        attrs["options"] = {key: attrs.pop(key) for key in list(attrs) if key in option_keys}
        return attrs


@extend_schema(methods=["GET"], responses=SnapshotOut(many=True), summary="Snapshots of a project")
@extend_schema(
    methods=["POST"],
    request=SnapshotIn,
    responses={202: SnapshotOut},
    summary="Freeze current judgments: queues a background build and answers 202 with the pending "
    "snapshot; poll GET /snapshots/<id> for status and progress (503 if the queue is down)",
)
@api_view(["GET", "POST"])
def snapshot_list(request, project_id: int):
    project = project_for(request.user, project_id, STAFF_ROLES)
    if request.method == "POST":
        data = SnapshotIn(data=request.data)
        data.is_valid(raise_exception=True)
        snapshot = services.snapshot_start(project=project, actor=request.user, **data.validated_data)
        return Response(SnapshotOut(snapshot).data, status=status.HTTP_202_ACCEPTED)
    return Response(SnapshotOut(Snapshot.objects.filter(project=project), many=True).data)


def _snapshot_for(user, snapshot_id: int) -> Snapshot:
    snapshot = Snapshot.objects.filter(pk=snapshot_id).first()
    if snapshot is None:
        raise NotFound("No such snapshot.")
    require_role(user, snapshot.project_id, STAFF_ROLES)
    return snapshot


@extend_schema(responses=SnapshotOut)
@api_view(["GET"])
def snapshot_detail(request, snapshot_id: int):
    return Response(SnapshotOut(_snapshot_for(request.user, snapshot_id)).data)


@extend_schema(
    parameters=[OpenApiParameter("file", str, enum=list(services.DOWNLOADS), default="jsonl")],
    responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
    summary="Download preferences (jsonl, parquet), pairs or raw judgments",
)
@api_view(["GET"])
def snapshot_download(request, snapshot_id: int):
    snapshot = _snapshot_for(request.user, snapshot_id)
    kind = request.query_params.get("file", "jsonl")
    path, content_type = services.snapshot_file(snapshot, kind)
    filename = f"project{snapshot.project_id}-snapshot{snapshot.number}-{path.name}"
    return FileResponse(path.open("rb"), as_attachment=True, filename=filename, content_type=content_type)
