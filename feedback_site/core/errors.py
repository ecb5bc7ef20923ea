"""Domain errors raised by services. Views and the API turn them into HTTP answers, so a
service never needs to know whether a browser or an API client called it."""

from __future__ import annotations

import errno


class ServiceError(Exception):
    status_code = 400
    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class Invalid(ServiceError):
    status_code = 400
    code = "invalid"


class Forbidden(ServiceError):
    status_code = 403
    code = "forbidden"


class NotFound(ServiceError):
    status_code = 404
    code = "not_found"


class Conflict(ServiceError):
    status_code = 409
    code = "conflict"


class QueueUnavailable(ServiceError):
    status_code = 503
    code = "queue_unavailable"


# Storage failures (a full, read-only or unwritable artifact folder) are the operator's to fix,
# not the caller's: the API and the pages answer 503 naming the problem instead of a bare 500.
_STORAGE_ERRNOS = {
    errno.ENOSPC: "is full",
    errno.EDQUOT: "is over its quota",
    errno.EROFS: "is read-only",
    errno.EACCES: "is not writable",
    errno.EPERM: "is not writable",
}


def storage_error_message(exc: BaseException) -> str | None:
    """The message to show for a storage failure, or None when `exc` is not one."""
    if not isinstance(exc, OSError) or exc.errno not in _STORAGE_ERRNOS:
        return None
    where = f" ({exc.filename})" if exc.filename else ""
    return (
        f"The artifact folder{where} {_STORAGE_ERRNOS[exc.errno]}: {exc.strerror}. Nothing was saved; "
        "ask an operator to free or fix the storage, then try again."
    )
