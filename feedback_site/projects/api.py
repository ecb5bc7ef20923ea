"""API for a project, its members and its guidelines.

The list of projects (whose POST also registers the base policy) is `overview.api`; imports,
prompts and annotation progress are `annotation.api`.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from feedback_site.core.errors import Invalid, NotFound
from feedback_site.projects import services
from feedback_site.projects.models import GuidelineVersion, Membership, Project, Role
from feedback_site.projects.permissions import ALL_ROLES, STAFF_ROLES, project_for, project_role

User = get_user_model()


class ProjectOut(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()
    current_policy_id = serializers.IntegerField(allow_null=True)

    class Meta:
        model = Project
        fields = ["id", "name", "description", "overlap", "lease_seconds", "criteria", "current_policy_id", "created_at", "role"]

    def get_role(self, project) -> str | None:
        return project_role(self.context["request"].user, project)


class ProjectIn(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    overlap = serializers.IntegerField(required=False, default=1)
    lease_seconds = serializers.IntegerField(required=False, default=None)
    criteria = serializers.ListField(child=serializers.CharField(max_length=50), required=False, default=list)
    guidelines = serializers.CharField(required=False, allow_blank=True, default="")


class ProjectPatch(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    overlap = serializers.IntegerField(required=False)
    lease_seconds = serializers.IntegerField(required=False)
    criteria = serializers.ListField(child=serializers.CharField(max_length=50), required=False)


@extend_schema(methods=["GET"], responses=ProjectOut)
@extend_schema(methods=["PATCH"], request=ProjectPatch, responses=ProjectOut, summary="Change project settings (project admins)")
@api_view(["GET", "PATCH"])
def project_detail(request, project_id: int):
    project = project_for(request.user, project_id, ALL_ROLES)
    if request.method == "PATCH":
        data = ProjectPatch(data=request.data)
        data.is_valid(raise_exception=True)
        project = services.project_update(project=project, actor=request.user, **data.validated_data)
    return Response(ProjectOut(project, context={"request": request}).data)


class MemberOut(serializers.Serializer):
    user_id = serializers.IntegerField()
    username = serializers.CharField(source="user.username")
    role = serializers.CharField()


class MemberIn(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.values)


@extend_schema(methods=["GET"], responses=MemberOut(many=True), summary="Members and their roles (staff)")
@extend_schema(methods=["POST"], request=MemberIn, responses={201: MemberOut}, summary="Add a member or change a role (admins)")
@api_view(["GET", "POST"])
def member_list(request, project_id: int):
    if request.method == "POST":
        project = project_for(request.user, project_id, {Role.ADMIN})
        data = MemberIn(data=request.data)
        data.is_valid(raise_exception=True)
        user = User.objects.filter(username=data.validated_data["username"], is_active=True).first()
        if user is None:
            raise Invalid(f"no active user named {data.validated_data['username']!r}", code="unknown_user")
        membership = services.membership_set(project=project, actor=request.user, user=user, role=data.validated_data["role"])
        return Response(MemberOut(membership).data, status=status.HTTP_201_CREATED)
    project = project_for(request.user, project_id, STAFF_ROLES)
    members = Membership.objects.filter(project=project).select_related("user").order_by("user__username")
    return Response(MemberOut(members, many=True).data)


@extend_schema(request=None, responses={204: None}, summary="Remove a member (their judgments are kept)")
@api_view(["DELETE"])
def member_detail(request, project_id: int, user_id: int):
    project = project_for(request.user, project_id, {Role.ADMIN})
    user = User.objects.filter(pk=user_id).first()
    if user is None:
        raise NotFound("No such user.")
    services.membership_remove(project=project, actor=request.user, user=user)
    return Response(status=status.HTTP_204_NO_CONTENT)


class GuidelineOut(serializers.ModelSerializer):
    class Meta:
        model = GuidelineVersion
        fields = ["number", "text", "created_at"]


@extend_schema(methods=["GET"], responses=GuidelineOut(many=True), summary="Guideline versions, newest first")
@extend_schema(methods=["POST"], request=inline_serializer("GuidelineIn", {"text": serializers.CharField()}), responses={201: GuidelineOut})
@api_view(["GET", "POST"])
def guideline_list(request, project_id: int):
    if request.method == "POST":
        project = project_for(request.user, project_id, STAFF_ROLES)
        text = request.data.get("text") if hasattr(request.data, "get") else None
        if not isinstance(text, str):
            raise Invalid("text is required", code="bad_guideline")
        version = services.guideline_publish(project=project, author=request.user, text=text)
        return Response(GuidelineOut(version).data, status=status.HTTP_201_CREATED)
    project = project_for(request.user, project_id, ALL_ROLES)
    return Response(GuidelineOut(GuidelineVersion.objects.filter(project=project), many=True).data)
