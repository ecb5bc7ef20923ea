"""The web process must never import torch or transformers: it would cost seconds and gigabytes
per gunicorn worker. Load every URL module and view in a fresh interpreter and look."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = r"""
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "feedback_site.settings")
import django
django.setup()
from django.urls import get_resolver, URLPattern, URLResolver
import feedback_site.wsgi  # noqa: F401

def walk(patterns):
    count = 0
    for entry in patterns:
        if isinstance(entry, URLResolver):
            count += walk(entry.url_patterns)
        else:
            entry.callback  # resolving the callback imports the view module
            count += 1
    return count

routes = walk(get_resolver().url_patterns)
from django.test import Client
from django.contrib.auth import get_user_model
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "transformers", "trl", "peft", "accelerate"})
print(routes, ",".join(heavy))
"""


def test_loading_every_url_module_imports_no_ml_library():
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    routes, _, heavy = result.stdout.strip().rpartition("\n")[2].partition(" ")
    assert int(routes) > 20
    assert heavy == "", f"the web process imported {heavy}"
