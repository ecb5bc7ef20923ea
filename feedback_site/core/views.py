"""Pages that belong to no single app: login and the user's API token (the project list, the home
page, is the projects app's)."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods
from rest_framework.authtoken.models import Token

from feedback_site.core.forms import ThrottledAuthenticationForm


class LoginView(auth_views.LoginView):
    """Django's login page with login throttling (core/throttle.py)."""

    authentication_form = ThrottledAuthenticationForm
    template_name = "core/login.html"


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
