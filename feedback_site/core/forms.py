"""Login forms with throttling (see core/throttle.py), for the site login and the admin login."""

from __future__ import annotations

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm

from feedback_site.core import throttle


class _ThrottleMixin:
    def clean(self):
        username = self.cleaned_data.get("username") or ""
        address = throttle.client_address(self.request)
        wait = throttle.seconds_blocked(username, address)
        if wait:
            raise forms.ValidationError(throttle.blocked_message(wait), code="throttled")
        try:
            cleaned = super().clean()
        except forms.ValidationError as error:
            if any(e.code == "invalid_login" for e in error.error_list):
                throttle.record_failure(username, address)
            raise
        throttle.reset(username, address)
        return cleaned


class ThrottledAuthenticationForm(_ThrottleMixin, AuthenticationForm):
    pass


class ThrottledAdminAuthenticationForm(_ThrottleMixin, AdminAuthenticationForm):
    pass
