"""Admin for projects, memberships, guideline versions and import batches.

Project settings and memberships are written through `projects.services`, so the admin obeys the
same rules as the pages (validated settings, a project always keeps one admin). Projects are
created on the "New project" page, which also registers policy version 0 and the admin membership.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Count

from feedback_site.core.admin import ReadOnlyAdmin, short
from feedback_site.core.errors import ServiceError
from feedback_site.projects import services
from feedback_site.projects.models import GuidelineVersion, ImportBatch, Membership, Project, Role

_EDITABLE_PROJECT_FIELDS = ("name", "description", "overlap", "lease_seconds", "criteria")


class ProjectAdminForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = list(_EDITABLE_PROJECT_FIELDS)

    def clean(self):
        cleaned = super().clean()
        if not self.errors and self.instance.pk:
            # Validate with the service inside a savepoint that is always rolled back, so the
            # admin shows the service's message on the form instead of a server error on save.
            changed = {name: cleaned[name] for name in self.changed_data if name in _EDITABLE_PROJECT_FIELDS}
            if changed:
                try:
                    with transaction.atomic():
                        fresh = Project.objects.get(pk=self.instance.pk)
                        services.project_update(project=fresh, actor=self.request_user, **changed)
                        transaction.set_rollback(True)
                except ServiceError as error:
                    raise forms.ValidationError(error.message) from None
        return cleaned


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]
    fields = ["user", "role", "created_at"]
    readonly_fields = ["user", "role", "created_at"]
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    form = ProjectAdminForm
    list_display = ["id", "name", "overlap", "lease_seconds", "current_policy", "member_count", "created_by", "created_at"]
    list_display_links = ["id", "name"]
    search_fields = ["name", "description"]
    list_filter = ["overlap", "created_at"]
    readonly_fields = ["current_policy", "created_by", "created_at"]
    list_select_related = ["current_policy", "created_by"]
    inlines = [MembershipInline]
    date_hierarchy = "created_at"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_members=Count("memberships", distinct=True))

    @admin.display(description="members", ordering="_members")
    def member_count(self, project) -> int:
        return project._members

    def has_add_permission(self, request) -> bool:
        # The "New project" page registers version 0 and the creator's admin membership.
        return False

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        form.request_user = request.user
        return form

    def save_model(self, request, obj, form, change):
        changed = {name: form.cleaned_data[name] for name in form.changed_data if name in _EDITABLE_PROJECT_FIELDS}
        if changed:
            project = Project.objects.get(pk=obj.pk)
            services.project_update(project=project, actor=request.user, **changed)


class MembershipAdminForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ["project", "user", "role"]

    def clean(self):
        cleaned = super().clean()
        instance = self.instance
        if instance.pk and ("project" in self.changed_data or "user" in self.changed_data):
            raise forms.ValidationError("Change only the role here; to move someone, add a new membership.")
        return cleaned


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    form = MembershipAdminForm
    list_display = ["id", "project", "user", "role", "created_at"]
    list_filter = ["role", "project"]
    search_fields = ["user__username", "user__email", "project__name"]
    raw_id_fields = ["project", "user"]
    list_select_related = ["project", "user"]
    readonly_fields = ["created_at"]

    def save_model(self, request, obj, form, change):
        membership = services.membership_set(project=obj.project, actor=request.user, user=obj.user, role=obj.role)
        obj.pk = membership.pk

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.role == Role.ADMIN:
            # A project keeps at least one admin (membership_remove refuses the last one).
            return Membership.objects.filter(project_id=obj.project_id, role=Role.ADMIN).count() > 1
        return super().has_delete_permission(request, obj)

    def delete_model(self, request, obj):
        services.membership_remove(project=obj.project, actor=request.user, user=obj.user)

    def delete_queryset(self, request, queryset):
        for membership in queryset.select_related("project", "user"):
            try:
                services.membership_remove(project=membership.project, actor=request.user, user=membership.user)
            except ServiceError as error:
                self.message_user(request, f"{membership}: {error.message}", level=messages.ERROR)


@admin.register(GuidelineVersion)
class GuidelineVersionAdmin(ReadOnlyAdmin):
    list_display = ["id", "project", "number", "excerpt", "created_by", "created_at"]
    list_filter = ["project"]
    search_fields = ["text", "project__name"]
    list_select_related = ["project", "created_by"]
    raw_id_fields = ["project", "created_by"]

    @admin.display(description="text")
    def excerpt(self, guideline) -> str:
        return short(guideline.text)


@admin.register(ImportBatch)
class ImportBatchAdmin(ReadOnlyAdmin):
    list_display = ["id", "project", "kind", "filename", "record_count", "queued_for_annotation", "created_by", "created_at"]
    list_filter = ["kind", "queued_for_annotation", "project"]
    search_fields = ["filename", "sha256", "project__name"]
    list_select_related = ["project", "created_by"]
    raw_id_fields = ["project", "created_by"]
    date_hierarchy = "created_at"
