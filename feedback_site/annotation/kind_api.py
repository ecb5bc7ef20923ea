"""The REST endpoints every task kind of the one queue has, written once: lease the next task,
the caller's progress, skip, renew; and, for kinds that freeze their results into their own
content-hashed files (ratings, demonstrations, conversations), list / create snapshots and download
one. A kind's api.py builds its endpoints here with its own services and wording, and keeps only
what is its own (queueing, the submit body, extra calls).

Every endpoint checks the caller as the kind's other endpoints do: project members lease and see
their progress, only the lease's holder skips or renews it (someone else's lease is a 404), staff
handle snapshots.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from feedback_site.core.errors import NotFound
from feedback_site.projects.permissions import ALL_ROLES, STAFF_ROLES, project_for, require_role


@dataclass(frozen=True)
class LeaseEndpoints:
    next: Callable
    progress: Callable
    skip: Callable
    renew: Callable


def lease_endpoints(
    *,
    noun: str,
    next_task: Callable,
    payload: Callable,
    progress: Callable,
    skip: Callable,
    renew: Callable,
    next_summary: str | None = None,
    skip_summary: str | None = None,
) -> LeaseEndpoints:
    """The four lease endpoints of a kind whose tasks are `noun`s ("answer to rate", "answer set")."""

    @extend_schema(responses=OpenApiTypes.OBJECT, request=None, summary=next_summary or f"Lease the next {noun} (204 when none is left)")
    @api_view(["POST"])
    def next_view(request, project_id: int):
        project = project_for(request.user, project_id, ALL_ROLES)
        assignment = next_task(project=project, annotator=request.user)
        if assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(payload(assignment))

    @extend_schema(responses=OpenApiTypes.OBJECT, summary=f"The caller's progress in a project ({noun}s done, skipped, still needed)")
    @api_view(["GET"])
    def progress_view(request, project_id: int):
        project = project_for(request.user, project_id, ALL_ROLES)
        return Response(progress(project=project, annotator=request.user))

    @extend_schema(responses=OpenApiTypes.OBJECT, request=None, summary=skip_summary or f"Skip a {noun}")
    @api_view(["POST"])
    def skip_view(request, assignment_id: int):
        assignment = skip(assignment_id=assignment_id, annotator=request.user)
        return Response({"assignment_id": assignment.pk, "status": assignment.status})

    @extend_schema(responses=OpenApiTypes.OBJECT, request=None, summary=f"Keep the lease on a {noun} while its page is open")
    @api_view(["POST"])
    def renew_view(request, assignment_id: int):
        assignment = renew(assignment_id=assignment_id, annotator=request.user)
        return Response({"assignment_id": assignment.pk, "expires_at": assignment.expires_at})

    return LeaseEndpoints(next=next_view, progress=progress_view, skip=skip_view, renew=renew_view)


@dataclass(frozen=True)
class SnapshotEndpoints:
    snapshots: Callable
    download: Callable


def snapshot_endpoints(
    *,
    model,
    out: Callable,
    create: Callable,
    file: Callable,
    file_prefix: str,
    list_summary: str,
    create_summary: str,
    download_summary: str,
) -> SnapshotEndpoints:
    """GET/POST `snapshots` (staff: list, or freeze now; the same content returns the latest with
    200) and `download` (staff of the snapshot's project; `file(snapshot)` checks the recorded
    hash) for a kind whose snapshots are one JSONL file each (`core.frozen`)."""

    @extend_schema(responses=OpenApiTypes.OBJECT, methods=["GET"], summary=list_summary)
    @extend_schema(responses=OpenApiTypes.OBJECT, methods=["POST"], request=None, summary=create_summary)
    @api_view(["GET", "POST"])
    def snapshots_view(request, project_id: int):
        project = project_for(request.user, project_id, STAFF_ROLES)
        if request.method == "POST":
            snapshot, created = create(project=project, actor=request.user)
            return Response(out(snapshot), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
        return Response([out(s) for s in model.objects.filter(project=project)[:200]])

    @extend_schema(responses={(200, "application/x-ndjson"): OpenApiTypes.BINARY}, summary=download_summary)
    @api_view(["GET"])
    def download_view(request, snapshot_id: int):
        snapshot = model.objects.filter(pk=snapshot_id).first()
        if snapshot is None:
            raise NotFound("No such snapshot.")
        require_role(request.user, snapshot.project_id, STAFF_ROLES)
        path = file(snapshot)
        return FileResponse(
            path.open("rb"), as_attachment=True, filename=f"{file_prefix}-{snapshot.number}.jsonl", content_type="application/x-ndjson"
        )

    return SnapshotEndpoints(snapshots=snapshots_view, download=download_view)
