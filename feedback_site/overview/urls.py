"""Page routes of the overview app (the project list's API is in feedback_site/api_urls.py)."""

from django.urls import path

from feedback_site.overview import views

urlpatterns = [
    path("projects/new/", views.project_create, name="project-create"),
    path("projects/<int:project_id>/", views.project_detail, name="project-detail"),
    path("projects/<int:project_id>/settings/", views.project_settings, name="project-settings"),
    path("projects/<int:project_id>/guidelines/", views.guideline_publish, name="project-guideline-publish"),
    path("projects/<int:project_id>/members/", views.project_members, name="project-members"),
    path("projects/<int:project_id>/members/add/", views.member_add, name="project-member-add"),
    path("projects/<int:project_id>/members/<int:user_id>/role/", views.member_role, name="project-member-role"),
    path("projects/<int:project_id>/members/<int:user_id>/remove/", views.member_remove, name="project-member-remove"),
    path("projects/<int:project_id>/members/<int:user_id>/unpause/", views.member_unpause, name="project-member-unpause"),
]
