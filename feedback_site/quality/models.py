"""Adjudicated labels: staff settle pairs whose judgments disagree. Snapshots use them first."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from feedback_site.annotation.models import Preference


class Adjudication(models.Model):
    """The final label of one pair. Re-adjudicating updates this row; every decision (with the
    label it replaced) is kept in the audit log (action `quality.adjudicate`)."""

    pair = models.OneToOneField("annotation.Pair", on_delete=models.CASCADE, related_name="adjudication")
    label = models.CharField(max_length=10, choices=Preference.choices)
    note = models.TextField(blank=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    decided_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pair_id"]

    def __str__(self) -> str:
        return f"pair {self.pair_id} adjudicated {self.label}"
