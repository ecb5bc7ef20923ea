"""Pages of the quality app."""

urlpatterns: list = []
