"""Forms of the project pages. They check types and shapes only; the services own the rules
(ranges, permissions) and their errors are attached back to the field they name."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model

from feedback_site.core.errors import ServiceError
from feedback_site.projects.models import ImportKind, Role


class ServiceErrorForm(forms.Form):
    """A form that can show a service's error next to the field it is about.

    Services raise errors with codes such as `bad_overlap`; `service_error_fields` maps a code to
    a field when the name differs, and codes naming no field go to the top of the form.
    """

    service_error_fields: dict[str, str] = {}

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)

    def add_service_error(self, error: ServiceError) -> None:
        field = self.service_error_fields.get(error.code)
        if field is None and error.code.startswith("bad_") and error.code[4:] in self.fields:
            field = error.code[4:]
        self.add_error(field if field in self.fields else None, error.message)


def split_criteria(value: str) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


class ProjectFieldsForm(ServiceErrorForm):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    overlap = forms.IntegerField(initial=1, help_text="Judgments each pair needs from distinct annotators (1 to 20).")
    lease_seconds = forms.IntegerField(
        label="Lease (seconds)",
        help_text="How long an annotator holds a pair while their page is silent (30 to 86400). It renews while the page is open.",
    )
    criteria = forms.CharField(
        required=False,
        help_text="Optional per-criterion votes, comma separated, e.g. helpful, harmless, honest.",
    )

    service_error_fields = {"bad_lease": "lease_seconds"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["lease_seconds"].initial = settings.ASSIGNMENT_LEASE_SECONDS

    def clean_criteria(self) -> list[str]:
        return split_criteria(self.cleaned_data.get("criteria", ""))


class ProjectCreateForm(ProjectFieldsForm):
    guidelines = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text="What annotators should prefer. Published as guideline version 1; you can publish new versions later.",
    )


class ProjectSettingsForm(ProjectFieldsForm):
    @classmethod
    def for_project(cls, project, data=None):
        initial = {
            "name": project.name,
            "description": project.description,
            "overlap": project.overlap,
            "lease_seconds": project.lease_seconds,
            "criteria": ", ".join(project.criteria or []),
        }
        return cls(data, initial=initial, prefix="settings")

    def changed_values(self) -> dict:
        """Only the fields that differ, so a save does not rewrite untouched columns."""
        values = {}
        for name in self.changed_data:
            values[name] = self.cleaned_data[name]
        return values


class GuidelineForm(ServiceErrorForm):
    text = forms.CharField(
        label="New guideline version",
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Judgments record the guideline version they were made under.",
    )
    service_error_fields = {"bad_guideline": "text"}


class MemberAddForm(ServiceErrorForm):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.ANNOTATOR)

    def clean_username(self):
        username = self.cleaned_data["username"].strip()
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise forms.ValidationError(f"There is no active user named “{username}”.")
        self.cleaned_data["user"] = user
        return username


class MemberRoleForm(ServiceErrorForm):
    role = forms.ChoiceField(choices=Role.choices)


# Whether an upload of each kind goes to annotators unless the uploader says otherwise. Prompts
# are answered by generation first; HH-RLHF pairs already carry a human label.
QUEUE_DEFAULTS = {
    ImportKind.PROMPTS: True,
    ImportKind.PAIRS: True,
    ImportKind.HH_RLHF: False,
    ImportKind.RANKINGS: True,
    ImportKind.CONVERSATIONS: False,
}


class ImportForm(ServiceErrorForm):
    kind = forms.ChoiceField(choices=ImportKind.choices, initial=ImportKind.PROMPTS, widget=forms.RadioSelect)
    file = forms.FileField(help_text="JSONL, CSV or TSV, optionally gzip-compressed (.gz).")
    queue_for_annotation = forms.BooleanField(
        required=False,
        initial=True,
        label="Queue for annotation",
        help_text="Checked: every imported pair waits for its overlap of judgments (a label that came with the file is kept as the pair's pre-label). "
        "Unchecked: pairs are stored as pre-labelled data that snapshots use directly.",
    )
    # A parse error (it names the line) is shown above the form, where it cannot be missed.
    service_error_fields = {"bad_file": "__all__", "too_large": "file", "bad_kind": "kind"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        kind = self.data.get("kind") if self.is_bound else None
        self.fields["queue_for_annotation"].initial = QUEUE_DEFAULTS.get(kind or ImportKind.PROMPTS, True)

    def clean_file(self):
        upload = self.cleaned_data["file"]
        # Refused before it is read into memory; the service checks the bytes again.
        if upload.size > settings.IMPORT_MAX_BYTES:
            raise forms.ValidationError(
                f"The file is {upload.size:,} bytes; the limit is {settings.IMPORT_MAX_BYTES:,} bytes. Nothing was imported."
            )
        return upload
