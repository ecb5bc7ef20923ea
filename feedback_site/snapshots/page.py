"""The Snapshots page as every view of it renders it: preference snapshots, and the sections of
the other feedback kinds (ratings, rankings, conversations) with their forms and statistics."""

from __future__ import annotations

from django.shortcuts import render

from feedback_site.annotation.selectors import project_progress
from feedback_site.conversations.models import ConversationSnapshot
from feedback_site.projects.views import project_context
from feedback_site.quality.conversation_stats import conversation_statistics
from feedback_site.quality.ranking_stats import ranking_statistics
from feedback_site.quality.rating_stats import rating_statistics
from feedback_site.ratings.models import RatingSnapshot
from feedback_site.snapshots.forms import AGGREGATION_LABELS, ConversationQueueForm, RatingQueueForm, SnapshotForm
from feedback_site.snapshots.models import Snapshot

DOWNLOAD_LINKS = [
    ("jsonl", "Preferences (JSONL)"),
    ("parquet", "Preferences (Parquet)"),
    ("pairs", "Pairs"),
    ("judgments", "Raw judgments"),
    ("rankings", "Rankings"),
    ("ranking_pairs", "Ranking pairs"),
    ("conversation_pairs", "Conversation pairs"),
]


def render_page(
    request,
    project,
    role,
    *,
    form=None,
    rating_form=None,
    rating_snapshot_form=None,
    conversation_form=None,
    conversation_snapshot_form=None,
    status=200,
):
    """The whole page; a view that failed a form passes that form (with its errors) and a 400."""
    context = project_context(
        project,
        role,
        form=form or SnapshotForm(),
        snapshots=Snapshot.objects.filter(project=project).select_related("created_by").order_by("-number"),
        progress=project_progress(project),
        download_links=DOWNLOAD_LINKS,
        aggregation_labels=AGGREGATION_LABELS,
        rating_form=rating_form or RatingQueueForm(prefix="ratings", initial={"overlap": project.overlap}),
        rating_snapshot_form=rating_snapshot_form,
        rating_stats=rating_statistics(project),
        ranking_stats=ranking_statistics(project),
        conversation_form=conversation_form
        or ConversationQueueForm(prefix="conversations", initial={"overlap": project.overlap, "turns": 3, "candidates": 2}),
        conversation_snapshot_form=conversation_snapshot_form,
        conversation_stats=conversation_statistics(project),
        conversation_snapshots=ConversationSnapshot.objects.filter(project=project).select_related("created_by").order_by("-number"),
        rating_snapshots=RatingSnapshot.objects.filter(project=project).select_related("created_by").order_by("-number"),
    )
    return render(request, "snapshots/snapshots.html", context, status=status)
