"""Staff API of the model registry: list, detail (with lineage), promote, roll back, download."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.response import Response

from feedback_site.projects.permissions import STAFF_ROLES, project_for
from feedback_site.registry import services
from feedback_site.registry.models import ModelVersion, PolicyPointerChange


class VersionOut(serializers.ModelSerializer):
    training_run_id = serializers.SerializerMethodField()
    demonstration_snapshot_id = serializers.SerializerMethodField()
    is_current = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "project_id",
            "kind",
            "number",
            "name",
            "status",
            "artifact_uri",
            "artifact_sha256",
            "base_model",
            "parent_id",
            "snapshot_id",
            "demonstration_snapshot_id",
            "training_run_id",
            "config_hash",
            "code_version",
            "metrics",
            "created_at",
            "is_current",
        ]

    def get_training_run_id(self, version) -> int | None:
        run = version.training_run
        return run.pk if run else None

    def get_demonstration_snapshot_id(self, version) -> int | None:
        """SFT versions have no preference snapshot; their data is the run's demonstration snapshot."""
        run = version.training_run
        return run.demonstration_snapshot_id if run else None

    def get_is_current(self, version) -> bool:
        return version.project.current_policy_id == version.pk


class VersionDetailOut(VersionOut):
    lineage = serializers.SerializerMethodField()

    class Meta(VersionOut.Meta):
        fields = VersionOut.Meta.fields + ["lineage"]

    def get_lineage(self, version) -> list[dict]:
        return [{"id": v.pk, "kind": v.kind, "number": v.number, "name": v.name} for v in services.version_lineage(version)]


class PointerChangeOut(serializers.ModelSerializer):
    class Meta:
        model = PolicyPointerChange
        fields = ["id", "project_id", "action", "from_version_id", "to_version_id", "reason", "actor_id", "created_at"]


class ReasonIn(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)


@extend_schema(responses=VersionOut(many=True), summary="Model versions of a project (policies and reward models)")
@api_view(["GET"])
def version_list(request, project_id: int):
    project = project_for(request.user, project_id, STAFF_ROLES)
    versions = ModelVersion.objects.filter(project=project).select_related("project", "produced_by").order_by("created_at", "id")
    return Response(VersionOut(versions, many=True).data)


@extend_schema(responses=VersionDetailOut, summary="One model version with its lineage down to the base")
@api_view(["GET"])
def version_detail(request, version_id: int):
    return Response(VersionDetailOut(services.version_get(version_id=version_id, actor=request.user)).data)


@extend_schema(request=ReasonIn, responses=PointerChangeOut, summary="Make this policy version the project's current policy")
@api_view(["POST"])
def version_promote(request, version_id: int):
    version = services.version_get(version_id=version_id, actor=request.user)
    data = ReasonIn(data=request.data)
    data.is_valid(raise_exception=True)
    change = services.version_promote(version.project, version, request.user, reason=data.validated_data["reason"])
    return Response(PointerChangeOut(change).data)


@extend_schema(request=ReasonIn, responses=PointerChangeOut, summary="Point the project back at the previously promoted policy")
@api_view(["POST"])
def version_rollback(request, project_id: int):
    project = project_for(request.user, project_id, STAFF_ROLES)
    data = ReasonIn(data=request.data)
    data.is_valid(raise_exception=True)
    change = services.version_rollback(project, request.user, reason=data.validated_data["reason"])
    return Response(PointerChangeOut(change).data)


@extend_schema(responses=PointerChangeOut(many=True), summary="History of the current-policy pointer, newest first")
@api_view(["GET"])
def pointer_history(request, project_id: int):
    project = project_for(request.user, project_id, STAFF_ROLES)
    return Response(PointerChangeOut(services.pointer_history(project), many=True).data)


def download_response(version, actor) -> StreamingHttpResponse:
    filename, chunks = services.version_download(version=version, actor=actor)
    response = StreamingHttpResponse(chunks, content_type="application/x-tar")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Artifact-SHA256"] = version.artifact_sha256
    return response


@extend_schema(
    responses={(200, "application/x-tar"): bytes}, summary="Download the version's artifact as a tar (checked against its registered hash)"
)
@api_view(["GET"])
def version_download(request, version_id: int):
    version = services.version_get(version_id=version_id, actor=request.user)
    return download_response(version, request.user)
