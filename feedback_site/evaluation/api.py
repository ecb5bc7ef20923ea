"""Staff API of the evaluation app: runs, evaluation prompts, adversarial suite, review, leaderboard."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from feedback_site.core.errors import Invalid, NotFound
from feedback_site.evaluation import leaderboard as boards
from feedback_site.evaluation import services
from feedback_site.evaluation.models import AdversarialPrompt, EvaluationRun, EvaluationSample
from feedback_site.projects.permissions import STAFF_ROLES, project_for, require_role


class SampleOut(serializers.ModelSerializer):
    class Meta:
        model = EvaluationSample
        fields = [
            "id",
            "sample_set",
            "prompt_id",
            "adversarial_prompt_id",
            "prompt_messages",
            "policy_response",
            "baseline_response",
            "policy_tokens",
            "baseline_tokens",
            "policy_score",
            "baseline_score",
            "outcome",
            "kl",
            "harmlessness_score",
            "flagged",
            "flag_reasons",
            "reviewed",
            "reviewed_by_id",
            "reviewed_at",
            "review_note",
        ]


class RunOut(serializers.ModelSerializer):
    class Meta:
        model = EvaluationRun
        fields = [
            "id",
            "project_id",
            "kind",
            "status",
            "policy_id",
            "baseline_id",
            "reference_id",
            "reward_model_id",
            "harmlessness_model_id",
            "training_run_id",
            "trigger",
            "config",
            "results",
            "notes",
            "message",
            "attempts",
            "created_at",
            "started_at",
            "finished_at",
        ]


class RunDetailOut(RunOut):
    samples = serializers.SerializerMethodField()

    class Meta(RunOut.Meta):
        fields = RunOut.Meta.fields + ["samples"]

    def get_samples(self, run) -> list[dict]:
        return SampleOut(run.samples.order_by("id"), many=True).data


class RunIn(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["policy", "reward"], default="policy")
    policy_id = serializers.IntegerField(required=False, allow_null=True, default=None)
    baseline_id = serializers.IntegerField(required=False, allow_null=True, default=None)
    reward_model_id = serializers.IntegerField(required=False, allow_null=True, default=None)
    harmlessness_model_id = serializers.IntegerField(required=False, allow_null=True, default=None)
    config = serializers.DictField(required=False, default=dict)


class JsonlIn(serializers.Serializer):
    jsonl = serializers.CharField(help_text="JSONL text (or upload a file named 'file').", required=False)


class AdversarialOut(serializers.ModelSerializer):
    class Meta:
        model = AdversarialPrompt
        fields = ["id", "key", "category", "system_prompt", "text", "flag_patterns", "notes", "active", "shipped", "updated_at"]


class AdversarialPatch(serializers.Serializer):
    text = serializers.CharField(required=False)
    system_prompt = serializers.CharField(required=False, allow_blank=True)
    category = serializers.CharField(required=False)
    flag_patterns = serializers.ListField(child=serializers.CharField(), required=False)
    notes = serializers.CharField(required=False, allow_blank=True)
    active = serializers.BooleanField(required=False)


class ReviewIn(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=1000)
    reviewed = serializers.BooleanField(required=False, default=True)


def _payload(request) -> bytes:
    upload = request.FILES.get("file")
    if upload is not None:
        return upload.read()
    text = request.data.get("jsonl") if hasattr(request.data, "get") else None
    if not isinstance(text, str) or not text.strip():
        raise Invalid("send JSONL as the 'jsonl' field or a file named 'file'", code="missing_file")
    return text.encode("utf-8")


@extend_schema(methods=["GET"], responses=RunOut(many=True), summary="Evaluation runs of a project")
@extend_schema(
    methods=["POST"], request=RunIn, responses={201: RunOut}, summary="Launch an evaluation (policy vs baseline, or reward-model accuracy)"
)
@api_view(["GET", "POST"])
def run_list(request, project_id: int):
    project = project_for(request.user, project_id, STAFF_ROLES)
    if request.method == "POST":
        data = RunIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        if v["kind"] == "reward":
            run = services.reward_evaluation_launch(project=project, reward_model=v["reward_model_id"], actor=request.user)
        else:
            if v["policy_id"] is None:
                raise Invalid("policy_id is required", code="missing_version")
            baseline = v["baseline_id"] if v["baseline_id"] is not None else project.current_policy_id
            run = services.evaluation_launch(
                project=project,
                policy=v["policy_id"],
                baseline=baseline,
                reward_model=v["reward_model_id"],
                harmlessness_model=v["harmlessness_model_id"],
                actor=request.user,
                config=v["config"],
            )
        return Response(RunOut(run).data, status=status.HTTP_201_CREATED)
    return Response(RunOut(EvaluationRun.objects.filter(project=project).order_by("-id")[:200], many=True).data)


@extend_schema(responses=RunDetailOut, summary="One evaluation run with its per-prompt samples")
@api_view(["GET"])
def run_detail(request, run_id: int):
    return Response(RunDetailOut(services.evaluation_get(run_id=run_id, actor=request.user)).data)


@extend_schema(
    request=JsonlIn, responses={201: dict}, summary='Import held-out evaluation prompts (JSONL: {"prompt": ..., "system_prompt"?: ...})'
)
@api_view(["POST"])
def eval_prompts(request, project_id: int):
    project = project_for(request.user, project_id, STAFF_ROLES)
    created = services.eval_prompts_import(project=project, actor=request.user, data=_payload(request))
    return Response({"created": len(created)}, status=status.HTTP_201_CREATED)


@extend_schema(request=JsonlIn, responses={201: dict}, summary='Import held-out labelled pairs (JSONL: {"prompt", "chosen", "rejected"})')
@api_view(["POST"])
def heldout_pairs(request, project_id: int):
    project = project_for(request.user, project_id, STAFF_ROLES)
    count = services.heldout_pairs_import(project=project, actor=request.user, data=_payload(request))
    return Response({"created": count}, status=status.HTTP_201_CREATED)


@extend_schema(methods=["GET"], responses=AdversarialOut(many=True), summary="The project's adversarial suite")
@extend_schema(
    methods=["POST"], request=JsonlIn, responses={201: dict}, summary="Import a suite (JSONL), or the shipped one when no file is sent"
)
@api_view(["GET", "POST"])
def adversarial_list(request, project_id: int):
    project = project_for(request.user, project_id, STAFF_ROLES)
    if request.method == "POST":
        has_data = bool(request.FILES.get("file")) or bool(request.data.get("jsonl") if hasattr(request.data, "get") else None)
        count = services.adversarial_import(
            project=project,
            actor=request.user,
            data=_payload(request) if has_data else None,
            replace=str(request.data.get("replace", "")).lower() in ("1", "true", "yes"),
        )
        return Response({"imported": count}, status=status.HTTP_201_CREATED)
    return Response(AdversarialOut(AdversarialPrompt.objects.filter(project=project), many=True).data)


@extend_schema(request=AdversarialPatch, responses=AdversarialOut, summary="Edit one adversarial prompt")
@api_view(["PATCH"])
def adversarial_detail(request, prompt_id: int):
    prompt = AdversarialPrompt.objects.select_related("project").filter(pk=prompt_id).first()
    if prompt is None:
        raise NotFound("No such adversarial prompt.")
    require_role(request.user, prompt.project_id, STAFF_ROLES)
    data = AdversarialPatch(data=request.data)
    data.is_valid(raise_exception=True)
    return Response(AdversarialOut(services.adversarial_update(prompt=prompt, actor=request.user, **data.validated_data)).data)


@extend_schema(responses=SampleOut(many=True), summary="Flagged answers awaiting human review (?all=1 includes reviewed ones)")
@api_view(["GET"])
def review_list(request, project_id: int):
    project = project_for(request.user, project_id, STAFF_ROLES)
    include = request.query_params.get("all") in ("1", "true")
    return Response(SampleOut(services.review_queue(project, include_reviewed=include)[:500], many=True).data)


@extend_schema(request=ReviewIn, responses=SampleOut, summary="Mark a flagged answer reviewed (or not)")
@api_view(["POST"])
def sample_review(request, sample_id: int):
    data = ReviewIn(data=request.data)
    data.is_valid(raise_exception=True)
    sample = services.sample_review(sample_id=sample_id, actor=request.user, **data.validated_data)
    return Response(SampleOut(sample).data)


@extend_schema(responses=dict, summary="Bradley-Terry ratings of the project's policy versions (human and automated kept apart)")
@api_view(["GET"])
def leaderboard(request, project_id: int):
    project = project_for(request.user, project_id, STAFF_ROLES)
    return Response(boards.leaderboard(project))
