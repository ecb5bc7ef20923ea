"""Page routes of the projects app (filled in with its views)."""

urlpatterns: list = []
