from django.urls import path

from feedback_site.loop import views

urlpatterns = [
    path("projects/<int:project_id>/loop/", views.project_loop, name="project-loop"),
    path("campaigns/<int:campaign_id>/", views.campaign_detail, name="loop-campaign"),
    path("rounds/<int:round_id>/", views.round_detail, name="loop-round"),
]
