"""Middleware: a storage failure on a page (full or read-only artifact folder) is answered with
a 503 page that says what is wrong, not a bare 500 (the API does the same in core/api.py)."""

from __future__ import annotations

import logging

from django.shortcuts import render

from feedback_site.core.errors import storage_error_message

log = logging.getLogger(__name__)


class StorageErrorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        message = storage_error_message(exception)
        if message is None:
            return None
        log.error("storage failure on %s: %s", request.path, exception)
        return render(request, "core/storage_error.html", {"message": message}, status=503)
