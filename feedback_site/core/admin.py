"""Shared pieces of the Django admin.

The admin is for looking things up and for a few operator edits. Writes that carry business rules
(projects, memberships) go through the same services as the pages; records of history (judgments,
snapshots, model versions, imports, runs) are shown read-only so the admin cannot break lineage.
"""

from __future__ import annotations

from django.contrib import admin

admin.site.site_header = "Feedback loop administration"
admin.site.site_title = "Feedback loop admin"
admin.site.index_title = "Projects, data and runs"


class ReadOnlyAdmin(admin.ModelAdmin):
    """Viewable, never added, changed or deleted from the admin (services create these rows)."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class BigTableAdmin(ReadOnlyAdmin):
    """Read-only admin for tables that grow to millions of rows: no full COUNT(*) on every
    changelist, and no date hierarchy queries over the whole table."""

    show_full_result_count = False
    list_per_page = 50


def short(text: str, length: int = 80) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= length else text[: length - 1] + "…"


from feedback_site.core.models import AuditEntry  # noqa: E402  (the admin helpers above come first)


@admin.register(AuditEntry)
class AuditEntryAdmin(BigTableAdmin):
    list_display = ("created_at", "action", "actor", "project", "target_type", "target_id")
    list_filter = ("action",)


# Throttled admin login (core/throttle.py): the admin's login form is a second way to guess passwords.
from feedback_site.core.forms import ThrottledAdminAuthenticationForm  # noqa: E402

admin.site.login_form = ThrottledAdminAuthenticationForm


# Users: deactivated, never deleted (their judgments are kept and reference them with PROTECT);
# API tokens revocable from the list.
from django.contrib import messages  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin  # noqa: E402

from feedback_site.core import accounts  # noqa: E402

User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    actions = ["revoke_api_tokens", "deactivate_users"]

    def has_delete_permission(self, request, obj=None) -> bool:
        # Deleting a user would orphan their paid-for work; deactivate instead.
        return False

    @admin.action(description="Revoke API tokens of the selected users")
    def revoke_api_tokens(self, request, queryset):
        total = sum(accounts.tokens_revoke(actor=request.user, user=user) for user in queryset)
        self.message_user(request, f"Revoked {total} token(s).", messages.SUCCESS)

    @admin.action(description="Deactivate the selected users (their judgments are kept)")
    def deactivate_users(self, request, queryset):
        done = 0
        for user in queryset:
            if user.pk == request.user.pk:
                self.message_user(request, "You cannot deactivate yourself; skipped.", messages.WARNING)
                continue
            accounts.user_deactivate(actor=request.user, user=user)
            done += 1
        self.message_user(request, f"Deactivated {done} user(s); their work is kept.", messages.SUCCESS)
