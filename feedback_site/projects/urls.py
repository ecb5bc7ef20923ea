"""Page routes of the projects app: the project list (the home page). The other project pages are
routed by the apps whose data they show (overview, annotation, ...)."""

from django.urls import path

from feedback_site.projects import views

urlpatterns = [
    path("", views.home, name="home"),
]
