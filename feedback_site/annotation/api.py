"""Annotator API: next pair, judgment, skip, lease renewal, own progress."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from feedback_site.annotation import selectors, services
from feedback_site.annotation.models import DisplayChoice, Strength
from feedback_site.core.api import project_for
from feedback_site.core.errors import NotFound
from feedback_site.projects.models import Project
from feedback_site.core.permissions import ALL_ROLES


class JudgmentIn(serializers.Serializer):
    choice = serializers.ChoiceField(choices=DisplayChoice.values)
    strength = serializers.ChoiceField(choices=Strength.values, required=False, allow_blank=True, default="")
    criteria = serializers.DictField(child=serializers.ChoiceField(choices=["left", "right", "tie"]), required=False, default=dict)
    rationale = serializers.CharField(required=False, allow_blank=True, default="", max_length=10_000, trim_whitespace=False)
    time_spent_ms = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=0, max_value=86_400_000)


class JudgmentOut(serializers.Serializer):
    judgment_id = serializers.IntegerField(source="pk")
    assignment_id = serializers.IntegerField()
    choice = serializers.CharField()
    strength = serializers.CharField()
    criteria = serializers.DictField()
    rationale = serializers.CharField()
    time_spent_ms = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()


_side = inline_serializer("Side", {"text": serializers.CharField(), "html": serializers.CharField()})
AssignmentOut = inline_serializer(
    "Assignment",
    {
        "assignment_id": serializers.IntegerField(),
        "prompt": inline_serializer(
            "AssignmentPrompt",
            {"text": serializers.CharField(), "html": serializers.CharField(), "system_prompt": serializers.CharField(),
             "history": serializers.ListField(child=serializers.DictField())},
        ),
        "left": _side,
        "right": _side,
        "criteria": serializers.ListField(child=serializers.CharField()),
        "expires_at": serializers.DateTimeField(),
        "lease_seconds": serializers.IntegerField(),
    },
)


@extend_schema(
    request=None,
    responses={200: AssignmentOut, 204: OpenApiResponse(description="Nothing left for you in this project.")},
    summary="Lease the next pair (or get back the one you hold)",
)
@api_view(["POST"])
def assignment_next(request, project_id: int):
    # The service checks membership (404 for non-members); checking here too would cost the
    # hottest call in the product one more query.
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        raise NotFound("No such project.")
    leased = services.assignment_next(project=project, annotator=request.user)
    if leased is None:
        return Response(status=status.HTTP_204_NO_CONTENT)
    return Response(selectors.assignment_payload(leased.assignment))


@extend_schema(request=JudgmentIn, responses={201: JudgmentOut, 200: JudgmentOut}, summary="Submit a judgment (idempotent)")
@api_view(["POST"])
def judgment_submit(request, assignment_id: int):
    data = JudgmentIn(data=request.data)
    data.is_valid(raise_exception=True)
    judgment, created = services.judgment_submit(assignment_id=assignment_id, annotator=request.user, **data.validated_data)
    return Response(JudgmentOut(judgment).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


@extend_schema(
    request=None,
    responses={200: inline_serializer("SkipOut", {"assignment_id": serializers.IntegerField(), "status": serializers.CharField()})},
    summary="Skip the pair (you will not be offered it again)",
)
@api_view(["POST"])
def assignment_skip(request, assignment_id: int):
    assignment = services.assignment_skip(assignment_id=assignment_id, annotator=request.user)
    return Response({"assignment_id": assignment.pk, "status": assignment.status})


@extend_schema(
    request=None,
    responses={200: inline_serializer("RenewOut", {"assignment_id": serializers.IntegerField(), "expires_at": serializers.DateTimeField()})},
    summary="Renew the lease while the page is open",
)
@api_view(["POST"])
def assignment_renew(request, assignment_id: int):
    assignment = services.assignment_renew(assignment_id=assignment_id, annotator=request.user)
    return Response({"assignment_id": assignment.pk, "expires_at": assignment.expires_at})


@extend_schema(
    responses={200: inline_serializer("Progress", {"judged": serializers.IntegerField(), "skipped": serializers.IntegerField(),
                                                   "remaining_in_project": serializers.IntegerField()})},
    summary="Your own progress in a project",
)
@api_view(["GET"])
def my_progress(request, project_id: int):
    project = project_for(request.user, project_id, ALL_ROLES)
    return Response(selectors.annotator_progress(project=project, annotator=request.user))
