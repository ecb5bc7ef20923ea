"""Page routes of the snapshots app (filled in with its views)."""

urlpatterns: list = []
