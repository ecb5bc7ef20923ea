"""Page routes of the annotation app (filled in with its views)."""

urlpatterns: list = []
