"""Why this is hand-written and not DRF's throttling (checked against djangorestframework 3.18,
whose `SimpleRateThrottle` was tried on the cases of tests/security/test_accounts.py and
test_data_safety.py; this module is the project's only throttle, there is no other to merge):

* It counts failed logins only, and a correct password resets the count. `SimpleRateThrottle`
  counts every request it lets through, the successful ones included, and has no reset: with a
  limit of 3, "2 wrong, right, 2 wrong, right" is [allowed x3, refused x3] with DRF, where this
  module lets both correct logins in (test_a_success_resets_the_count).
* Its window is any number of seconds (FEEDBACK_LOGIN_THROTTLE_WINDOW, 900 by default). DRF's
  rates are "N/s", "N/m", "N/h" or "N/d" (only the first letter of the period is read): "5/15m"
  and "5/900s" raise KeyError, so a 15-minute window cannot be expressed.
* It fails open when the cache (Redis) is down. DRF's throttle calls the cache unguarded, so an
  outage raises redis ConnectionError and every login would answer 500
  (test_logins_work_and_throttle_fails_open_when_the_cache_is_down).
* It runs inside Django's login forms (the site's and the admin's), which are not DRF views: DRF
  throttles are checked by `APIView.check_throttles` and answer 429, while a login page answers
  200 with the form's "Too many failed logins" error, which the tests and users rely on.

The storage is already the maintained part: Django's cache (below). What is left here is the
counting policy above, about forty lines.

Login throttling: after LOGIN_THROTTLE_FAILURES failed logins for one username from one
address within LOGIN_THROTTLE_WINDOW seconds, further attempts are refused until the window
passes (a correct password included, so guessing cannot continue in the background).

Counts live in Django's cache: Redis in production (shared by every gunicorn worker), local
memory on a laptop and in tests. If the cache cannot be reached the check fails open and logs:
a Redis outage must not lock every user out (issue 6: annotating continues without Redis).
"""

from __future__ import annotations

import hashlib
import logging
import time

from django.conf import settings
from django.core.cache import cache

log = logging.getLogger(__name__)


def _limit() -> int:
    return int(getattr(settings, "LOGIN_THROTTLE_FAILURES", 5))


def _window() -> int:
    return int(getattr(settings, "LOGIN_THROTTLE_WINDOW", 15 * 60))


def client_address(request) -> str:
    # REMOTE_ADDR only: X-Forwarded-For is set by the client unless a trusted proxy rewrites it,
    # and trusting it would let an attacker pick a fresh "address" for every guess.
    return (request.META.get("REMOTE_ADDR") if request is not None else None) or "unknown"


def _key(username: str, address: str) -> str:
    digest = hashlib.sha256(f"{(username or '').strip().lower()}\x00{address}".encode()).hexdigest()
    return f"login-failures:{digest}"


def seconds_blocked(username: str, address: str) -> int:
    """0 when a login may be tried; otherwise how many seconds until it may."""
    try:
        entry = cache.get(_key(username, address))
    except Exception as error:  # cache (Redis) down: fail open
        log.warning("login throttle unavailable (%s); allowing the attempt", error)
        return 0
    if not entry:
        return 0
    failures, first = entry
    remaining = int(first + _window() - time.time())
    if failures >= _limit() and remaining > 0:
        return remaining
    return 0


def record_failure(username: str, address: str) -> None:
    key = _key(username, address)
    try:
        entry = cache.get(key)
        now = time.time()
        if not entry or now - entry[1] >= _window():
            entry = (0, now)
        cache.set(key, (entry[0] + 1, entry[1]), timeout=_window())
    except Exception as error:
        log.warning("login throttle unavailable (%s); failure not counted", error)


def reset(username: str, address: str) -> None:
    try:
        cache.delete(_key(username, address))
    except Exception as error:
        log.warning("login throttle unavailable (%s)", error)


def blocked_message(seconds: int) -> str:
    minutes = max(1, -(-seconds // 60))
    return (
        f"Too many failed logins for this username from your address. Try again in {minutes} "
        f"minute{'s' if minutes != 1 else ''}, or ask an admin to reset your password."
    )
