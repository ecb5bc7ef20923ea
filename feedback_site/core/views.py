"""Pages that belong to no single app: login, the project list and the user's API token."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods
from rest_framework.authtoken.models import Token

from feedback_site.core.forms import ThrottledAuthenticationForm
from feedback_site.core.permissions import can_create_projects, visible_projects
from feedback_site.projects.models import Membership, Role


class LoginView(auth_views.LoginView):
    """Django's login page with login throttling (core/throttle.py)."""

    authentication_form = ThrottledAuthenticationForm
    template_name = "core/login.html"


@login_required
def home(request):
    projects = list(visible_projects(request.user).order_by("name"))
    roles = dict(Membership.objects.filter(user=request.user).values_list("project_id", "role"))
    labels = dict(Role.choices)
    rows = [
        {"project": p, "role_label": labels.get(roles.get(p.pk) or (Role.ADMIN if request.user.is_superuser else ""), "")} for p in projects
    ]
    return render(request, "core/home.html", {"rows": rows, "can_create": can_create_projects(request.user)})


@login_required
@require_http_methods(["GET", "POST"])
def api_token(request):
    if request.method == "POST":
        with transaction.atomic():
            Token.objects.filter(user=request.user).delete()
            Token.objects.create(user=request.user)
        return redirect("api-token")
    token = Token.objects.filter(user=request.user).values_list("key", flat=True).first()
    return render(request, "core/api_token.html", {"token": token})
