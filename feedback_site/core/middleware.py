"""Middleware: Django's own errors under /api/ are JSON; a storage failure on a page (full or
read-only artifact folder) is answered with a 503 page that says what is wrong, not a bare 500
(the API does the same in core/api.py)."""

from __future__ import annotations

import logging
from http import HTTPStatus

from django.http import JsonResponse
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


class ApiErrorJsonMiddleware:
    """Every error under /api/ is JSON in the API's shape, `{"error": code, "detail": message}`.

    DRF views already answer so through `core.api.exception_handler`; what is left is Django's
    own answers: a URL that matches no route (`/api/v1/projects/abc/`), a plain view's 405, and
    the 500 page. Rewriting the finished response here (rather than in handler404) also covers
    DEBUG, where Django would otherwise answer with its debug page that lists every route.
    Placed right after SecurityMiddleware, so the rewritten answer still gets its headers.
    """

    CODES = {400: "bad_request", 403: "forbidden", 404: "not_found", 405: "method_not_allowed", 500: "server_error"}

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code < 400 or not request.path.startswith("/api/"):
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        return api_error_response(request, response.status_code, allow=response.get("Allow"))


def api_error_response(request, status: int, *, allow: str | None = None) -> JsonResponse:
    code = ApiErrorJsonMiddleware.CODES.get(status, "error")
    if status == 404:
        detail = f"No API route or object at {request.path}. The routes are listed at /api/docs/."
    elif status == 405:
        detail = f"Method {request.method} is not allowed here" + (f"; use {allow}." if allow else ".")
    elif status >= 500:
        detail = "The server failed to answer this request; the error is logged for an operator."
    else:
        try:
            detail = HTTPStatus(status).phrase
        except ValueError:
            detail = "Error"
    response = JsonResponse({"error": code, "detail": detail}, status=status)
    if allow:
        response["Allow"] = allow
    return response
