"""Page routes of the generation app (filled in with its views)."""

urlpatterns: list = []
