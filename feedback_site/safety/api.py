"""Staff API of the safety screen: the project policy, flagged responses, release / reject."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.response import Response

from feedback_site.core.api import strict_body
from feedback_site.projects.permissions import STAFF_ROLES, project_for
from feedback_site.safety import services
from feedback_site.safety.models import SafetyPolicy, SafetyScreen
from rlhf.safety import DEFAULT_RULES


class SafetyPolicyOut(serializers.ModelSerializer):
    classifier_id = serializers.IntegerField(allow_null=True)
    default_rules = serializers.SerializerMethodField()

    class Meta:
        model = SafetyPolicy
        fields = ["enabled", "action", "use_default_rules", "rules", "classifier_id", "threshold", "default_rules"]

    def get_default_rules(self, policy) -> list:
        return list(DEFAULT_RULES)


class SafetyPolicyIn(serializers.Serializer):
    enabled = serializers.BooleanField(required=False)
    action = serializers.CharField(required=False)
    use_default_rules = serializers.BooleanField(required=False)
    rules = serializers.JSONField(required=False)
    classifier_id = serializers.IntegerField(required=False, allow_null=True)
    threshold = serializers.FloatField(required=False)


class SafetyScreenOut(serializers.ModelSerializer):
    response_id = serializers.IntegerField()
    response_text = serializers.CharField(source="response.text")
    prompt_text = serializers.CharField(source="response.prompt.text")
    hidden = serializers.BooleanField()

    class Meta:
        model = SafetyScreen
        fields = [
            "id",
            "response_id",
            "verdict",
            "action",
            "matched_rule",
            "score",
            "threshold",
            "review_status",
            "reviewed_at",
            "hidden",
            "response_text",
            "prompt_text",
            "created_at",
        ]


@extend_schema(methods=["GET"], responses=SafetyPolicyOut, summary="The project's safety policy")
@extend_schema(methods=["PUT", "PATCH"], request=SafetyPolicyIn, responses=SafetyPolicyOut, summary="Change the safety policy")
@api_view(["GET", "PUT", "PATCH"])
def safety_policy(request, project_id: int):
    project = project_for(request.user, project_id, STAFF_ROLES)
    if request.method in ("PUT", "PATCH"):
        policy = services.policy_update(project=project, actor=request.user, **strict_body(request, SafetyPolicyIn))
        return Response(SafetyPolicyOut(policy).data)
    return Response(SafetyPolicyOut(services.policy_for(project)).data)


@extend_schema(responses=SafetyScreenOut(many=True), summary="Flagged responses (status=pending|released|rejected|hidden|warn|all)")
@api_view(["GET"])
def flagged_list(request, project_id: int):
    project = project_for(request.user, project_id, STAFF_ROLES)
    screens = services.flagged_list(project=project, actor=request.user, status=request.query_params.get("status"))
    return Response(SafetyScreenOut(screens[:500], many=True).data)


@extend_schema(request=None, responses=SafetyScreenOut, summary="Release a flagged response to annotators")
@api_view(["POST"])
def screen_release(request, screen_id: int):
    return Response(SafetyScreenOut(services.review_release(screen_id=screen_id, actor=request.user)).data)


@extend_schema(request=None, responses=SafetyScreenOut, summary="Reject a flagged response (keep it hidden)")
@api_view(["POST"])
def screen_reject(request, screen_id: int):
    return Response(SafetyScreenOut(services.review_reject(screen_id=screen_id, actor=request.user)).data)
