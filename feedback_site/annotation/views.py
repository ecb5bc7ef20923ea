"""The annotator page, and the staff page that imports prompts and pairs.

The annotator page itself is a shell: the pair it shows, every judgment and skip go through the JSON API
(`feedback_site/annotation/api.py`), so the browser and API clients share one code path and the
next pair appears without a page reload. Nothing from a prompt or a model response is rendered
into this HTML; the only user-written text here is the project's guideline, passed through the
same sanitising markdown renderer as model output.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_http_methods

from feedback_site.annotation import imports, selectors, services
from feedback_site.core.rendering import render_markdown
from feedback_site.projects.forms import QUEUE_DEFAULTS, ImportForm
from feedback_site.projects.models import ImportBatch, ImportKind, Membership, Project
from feedback_site.projects.permissions import STAFF_ROLES, project_role
from feedback_site.projects.views import form_status, project_context, project_page, run_service

# Keyboard scheme, shown on the page and in the help panel; annotate.js implements the same keys.
SHORTCUTS = [
    ("1", "Left is better"),
    ("2", "Right is better"),
    ("3", "Tie"),
    ("4", "Both bad"),
    ("Q / W / E", "Strength: slightly / clearly / much better (after 1 or 2)"),
    ("Z / X / C", "Criterion vote: left / right / tie (for the highlighted criterion)"),
    ("R", "Write a rationale (Esc leaves the text box, Ctrl+Enter submits from it)"),
    ("Enter", "Submit the judgment"),
    ("S", "Skip this pair (it will not come back)"),
    ("G", "Show or hide the guidelines"),
    ("?", "Show or hide this help"),
]


def _pause_message(user, project) -> str:
    reason = (
        Membership.objects.filter(project=project, user_id=user.pk, paused_at__isnull=False).values_list("pause_reason", flat=True).first()
    )
    return services._paused_message(reason) if reason is not None else ""


def _assignment_url(name: str) -> str:
    # The JS swaps the 0 for the real assignment id; reversing keeps the URLs in one place.
    return reverse(name, args=[0])


@login_required
@require_GET
def annotate(request, project_id: int):
    project = Project.objects.filter(pk=project_id).first()
    # Non-members get the same 404 as a missing project, so project ids are not probeable.
    if project is None or project_role(request.user, project) is None:
        raise Http404("No such project.")
    guideline = selectors.current_guideline(project)
    config = {
        "projectId": project.pk,
        "csrfToken": get_token(request),
        "csrfCookieName": settings.CSRF_COOKIE_NAME,
        "guidelineVersion": guideline.number if guideline else None,
        "urls": {
            "next": reverse("api-assignment-next", args=[project.pk]),
            "progress": reverse("api-my-progress", args=[project.pk]),
            "judgment": _assignment_url("api-judgment"),
            "skip": _assignment_url("api-skip"),
            "renew": _assignment_url("api-renew"),
            "home": reverse("home"),
        },
    }
    context = {
        "project": project,
        "guideline": guideline,
        # render_markdown escapes raw HTML and then allow-lists tags with nh3, so this is safe.
        "guideline_html": mark_safe(render_markdown(guideline.text)) if guideline else "",
        "shortcuts": SHORTCUTS,
        "criteria": list(project.criteria or []),
        "config": config,
        # Filled in by the page's first call to next (403 `paused`); rendered here too for a page
        # without JavaScript.
        "pause_message": _pause_message(request.user, project),
    }
    return render(request, "annotation/annotate.html", context)


# ------------------------------------------------------------------------------------------------
# Imports
# ------------------------------------------------------------------------------------------------


@project_page(STAFF_ROLES)
@require_http_methods(["GET", "POST"])
def project_imports(request, project, role):
    status = 200
    if request.method == "POST":
        form = ImportForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.cleaned_data["file"]
            result = run_service(
                form,
                lambda: imports.import_file(
                    project=project,
                    actor=request.user,
                    kind=form.cleaned_data["kind"],
                    filename=upload.name,
                    data=upload.read(),
                    queue_for_annotation=form.cleaned_data["queue_for_annotation"],
                ),
            )
            if result is not None:
                what = f"{result.prompts:,} prompt{'s' if result.prompts != 1 else ''}"
                if result.made:
                    what += f" and {result.made}"
                if result.pairs:
                    what += f" and {result.pairs:,} pair{'s' if result.pairs != 1 else ''}"
                messages.success(request, f"Imported {what} from {result.batch.filename}.")
                return redirect("project-imports", project.pk)
        status = form_status(form)
    else:
        form = ImportForm()
    context = project_context(
        project,
        role,
        form=form,
        batches=ImportBatch.objects.filter(project=project).select_related("created_by").order_by("-id")[:100],
        queue_defaults={kind.value: QUEUE_DEFAULTS[kind] for kind in ImportKind},
        max_bytes=settings.IMPORT_MAX_BYTES,
    )
    return render(request, "projects/imports.html", context, status=status)
