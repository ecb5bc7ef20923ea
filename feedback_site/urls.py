from csp.decorators import csp_update
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from feedback_site.core import api as core_api
from feedback_site.core import views as core_views

urlpatterns = [
    path("accounts/login/", core_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/token/", core_views.api_token, name="api-token"),
    path("admin/", admin.site.urls),
    path("healthz", core_api.health, name="health"),
    path("api/v1/health", core_api.health, name="api-health"),
    path("", include("feedback_site.ops.urls")),  # /ops/ and /api/v1/health/details
    path("api/v1/", include("feedback_site.api_urls")),
    path("api/v1/", include("feedback_site.core.api_urls")),
    path("api/v1/", include("feedback_site.quality.api_urls")),
    path("api/v1/", include("feedback_site.evaluation.api_urls")),
    path("api/v1/", include("feedback_site.safety.api_urls")),
    path("api/v1/", include("feedback_site.playground.api_urls")),
    path("api/v1/", include("feedback_site.demonstrations.api_urls")),
    path("api/v1/", include("feedback_site.ratings.api_urls")),
    path("api/v1/", include("feedback_site.rankings.api_urls")),
    path("api/v1/", include("feedback_site.conversations.api_urls")),
    path("api/v1/", include("feedback_site.loop.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up code as a same-origin script (no inline <script>),
    # from a template without the inline <style> block, so /api/docs/ runs under the site's policy.
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="core/swagger_ui.html"),
        name="api-docs",
    ),
    # Redoc is the one exception: its bundle injects <style> elements and its page starts it inline.
    # It shows only the schema generated from our own code, never user or model text.
    path(
        "api/redoc/",
        csp_update(
            {
                "script-src": ["'unsafe-inline'"],
                "style-src": ["'unsafe-inline'", "https://fonts.googleapis.com"],
                "font-src": ["https://fonts.gstatic.com"],
                "worker-src": ["blob:"],
            }
        )(SpectacularRedocView.as_view(url_name="api-schema")),
        name="api-redoc",
    ),
    path("", include("feedback_site.projects.urls")),
    path("", include("feedback_site.overview.urls")),
    path("", include("feedback_site.annotation.urls")),
    path("", include("feedback_site.generation.urls")),
    path("", include("feedback_site.snapshots.urls")),
    path("", include("feedback_site.training.urls")),
    path("", include("feedback_site.quality.urls")),
    path("", include("feedback_site.evaluation.urls")),
    path("", include("feedback_site.safety.urls")),
    path("", include("feedback_site.playground.urls")),
    path("", include("feedback_site.demonstrations.urls")),
    path("", include("feedback_site.ratings.urls")),
    path("", include("feedback_site.rankings.urls")),
    path("", include("feedback_site.conversations.urls")),
    path("", include("feedback_site.loop.urls")),
]
