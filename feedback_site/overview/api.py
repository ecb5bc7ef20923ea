"""The list of projects, and creating one: POST registers the base policy too
(`registry.services.project_create`), so this view sits above the registry."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from feedback_site.projects.api import ProjectIn, ProjectOut
from feedback_site.projects.permissions import visible_projects
from feedback_site.registry import services as registry_services


@extend_schema(methods=["GET"], responses=ProjectOut(many=True), summary="Projects you belong to")
@extend_schema(methods=["POST"], request=ProjectIn, responses={201: ProjectOut}, summary="Create a project (site admins)")
@api_view(["GET", "POST"])
def project_list(request):
    if request.method == "POST":
        data = ProjectIn(data=request.data)
        data.is_valid(raise_exception=True)
        project = registry_services.project_create(creator=request.user, **data.validated_data)
        return Response(ProjectOut(project, context={"request": request}).data, status=status.HTTP_201_CREATED)
    projects = visible_projects(request.user).order_by("id")
    return Response(ProjectOut(projects, many=True, context={"request": request}).data)
