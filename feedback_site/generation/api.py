"""Staff API for generation runs and model versions."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from feedback_site.core.errors import Invalid
from feedback_site.generation import services
from feedback_site.generation.models import GenerationRun, Pairing
from feedback_site.projects.permissions import STAFF_ROLES, project_for
from feedback_site.registry.models import ModelKind, ModelVersion


class GenerationRunOut(serializers.ModelSerializer):
    policy_id = serializers.IntegerField()
    prompt_count = serializers.SerializerMethodField()

    class Meta:
        model = GenerationRun
        fields = [
            "id",
            "project_id",
            "policy_id",
            "status",
            "k",
            "temperature",
            "top_p",
            "top_k",
            "max_new_tokens",
            "seed",
            "batch_size",
            "pairing",
            "pairs_per_prompt",
            "rate_answers",
            "config_hash",
            "progress_done",
            "progress_total",
            "tokens_per_second",
            "response_count",
            "pair_count",
            "message",
            "log_tail",
            "cancel_requested",
            "created_at",
            "started_at",
            "finished_at",
            "prompt_count",
        ]

    def get_prompt_count(self, run) -> int:
        return len(run.prompt_ids)


class GenerationRunIn(serializers.Serializer):
    policy_id = serializers.IntegerField(required=False, allow_null=True, default=None)
    prompt_selection = serializers.ChoiceField(choices=["unanswered", "all"], default="unanswered")
    k = serializers.IntegerField(default=2)
    temperature = serializers.FloatField(default=0.7)
    top_p = serializers.FloatField(default=0.95)
    top_k = serializers.IntegerField(default=50)
    max_new_tokens = serializers.IntegerField(default=128)
    seed = serializers.IntegerField(default=0)
    batch_size = serializers.IntegerField(default=8)
    pairing = serializers.ChoiceField(choices=Pairing.values, default=Pairing.ALL)
    pairs_per_prompt = serializers.IntegerField(required=False, allow_null=True, default=None)
    rate_answers = serializers.BooleanField(default=False)


@extend_schema(methods=["GET"], responses=GenerationRunOut(many=True), summary="Generation runs of a project")
@extend_schema(methods=["POST"], request=GenerationRunIn, responses={201: GenerationRunOut}, summary="Generate K responses per prompt")
@api_view(["GET", "POST"])
def generation_run_list(request, project_id: int):
    project = project_for(request.user, project_id, STAFF_ROLES)
    if request.method == "POST":
        data = GenerationRunIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        policy_id = values.pop("policy_id")
        policy = None
        if policy_id is not None:
            policy = ModelVersion.objects.filter(pk=policy_id, project=project, kind=ModelKind.POLICY).first()
            if policy is None:
                raise Invalid(f"policy {policy_id} is not a policy version of this project", code="bad_policy")
        run = services.generation_launch(project=project, actor=request.user, policy=policy, **values)
        return Response(GenerationRunOut(run).data, status=status.HTTP_201_CREATED)
    runs = GenerationRun.objects.filter(project=project).order_by("-id")[:200]
    return Response(GenerationRunOut(runs, many=True).data)


@extend_schema(responses=GenerationRunOut, summary="One generation run with live progress")
@api_view(["GET"])
def generation_run_detail(request, run_id: int):
    return Response(GenerationRunOut(services.generation_get(run_id=run_id, actor=request.user)).data)


@extend_schema(request=None, responses=GenerationRunOut, summary="Cancel a generation run")
@api_view(["POST"])
def generation_run_cancel(request, run_id: int):
    run = services.generation_get(run_id=run_id, actor=request.user)
    return Response(GenerationRunOut(services.generation_cancel(run=run, actor=request.user)).data)


class ModelVersionOut(serializers.ModelSerializer):
    parent_id = serializers.IntegerField(allow_null=True)
    snapshot_id = serializers.IntegerField(allow_null=True)

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "kind",
            "number",
            "name",
            "artifact_uri",
            "base_model",
            "parent_id",
            "snapshot_id",
            "config_hash",
            "code_version",
            "metrics",
            "status",
            "created_at",
        ]


@extend_schema(responses=ModelVersionOut(many=True), summary="Policy and reward-model versions (staff)")
@api_view(["GET"])
def model_version_list(request, project_id: int):
    project = project_for(request.user, project_id, STAFF_ROLES)
    return Response(ModelVersionOut(ModelVersion.objects.filter(project=project), many=True).data)
