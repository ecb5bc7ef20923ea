"""Pages of the evaluation app."""

urlpatterns: list = []
