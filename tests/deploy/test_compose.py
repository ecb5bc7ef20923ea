"""The docker-compose deployment, checked without Docker (it does not run on these machines).

Parses docker-compose.yml and checks that every service's command points at something real
(the gunicorn WSGI callable, the Celery app, manage.py commands), that every setting production
needs from the environment is given to each service that loads the settings, and that the
settings load and pass Django's checks with exactly the environment a container would get.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = [name for name, svc in SERVICES.items() if "build" in svc]  # the ones running our image

# Values for the ${VAR:?message} placeholders a deployer must set (as in a .env file).
DEPLOYER_ENV = {
    "DJANGO_SECRET_KEY": "x" * 64,
    "POSTGRES_PASSWORD": "compose-test-password",
    "DJANGO_ALLOWED_HOSTS": "feedback.example.org",
}


def interpolate(value: str) -> str:
    """docker compose's ${VAR}, ${VAR:-default} and ${VAR:?error} against DEPLOYER_ENV."""

    def replace(match: re.Match) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3) or ""
        if name in DEPLOYER_ENV:
            return DEPLOYER_ENV[name]
        if op == ":?":
            raise AssertionError(f"compose requires {name} ({arg}) and the test gives no value for it")
        return arg if op == ":-" else ""

    return re.sub(r"\$\{(\w+)(:-|:\?|-)?([^}]*)\}", replace, str(value))


def service_env(name: str) -> dict[str, str]:
    env = SERVICES[name].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: interpolate(value) for key, value in env.items()}


def production_required_env() -> set[str]:
    """Variables the settings read with no default (env.get("X") with one argument) plus those whose
    default only suits a laptop (SQLite, the filesystem broker, artifacts under the repo)."""
    required = {"DJANGO_PROFILE", "DATABASE_URL", "CELERY_BROKER_URL", "FEEDBACK_ARTIFACTS_DIR"}
    tree = ast.parse((REPO / "feedback_site" / "settings.py").read_text())
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "env"
            and node.func.attr.startswith("get")
            and len(node.args) == 1
            and not node.keywords
            and isinstance(node.args[0], ast.Constant)
        ):
            required.add(node.args[0].value)
    return required


def test_the_stack_has_every_service_the_deployment_needs():
    assert {"postgres", "redis", "migrate", "web", "worker-default", "worker-gpu", "beat"} <= set(SERVICES)
    for name in ("postgres", "redis", "web", "worker-default", "worker-gpu"):
        assert "healthcheck" in SERVICES[name], f"{name} has no health check"
    assert "pgdata:/var/lib/postgresql/data" in SERVICES["postgres"]["volumes"]
    for name in ("web", "worker-default", "worker-gpu"):
        assert any(v.startswith("artifacts:") for v in SERVICES[name]["volumes"]), f"{name} does not mount the artifacts volume"
    assert {"pgdata", "artifacts"} <= set(COMPOSE["volumes"])


def test_the_gpu_worker_reserves_nvidia_gpus_and_consumes_only_the_gpu_queue():
    gpu = SERVICES["worker-gpu"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    command = gpu["command"]
    assert command[command.index("-Q") + 1] == "gpu"
    assert command[command.index("--max-tasks-per-child") + 1] == "1"  # GPU memory is given back per run
    # accelerate/torch.distributed (multi-GPU runs) need more shared memory than Docker's 64 MB.
    assert gpu.get("shm_size")
    default = SERVICES["worker-default"]["command"]
    assert default[default.index("-Q") + 1] == "default"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_every_command_points_at_a_real_entry_point(name):
    command = [interpolate(part) for part in SERVICES[name]["command"]]
    program = command[0]
    if program == "gunicorn":
        module_name, _, attribute = command[1].partition(":")
        wsgi = importlib.import_module(module_name)  # feedback_site.wsgi sets up Django
        assert callable(getattr(wsgi, attribute)), f"{command[1]} is not a WSGI callable"
        assert importlib.util.find_spec("gunicorn") is not None
    elif program == "celery":
        app_path = command[command.index("-A") + 1]
        module = importlib.import_module(app_path)
        from celery import Celery

        assert isinstance(module.app, Celery)
        assert command[command.index("-A") + 2] in {"worker", "beat"}
        if "-Q" in command:
            routes = module.app.conf.task_routes
            assert set(command[command.index("-Q") + 1].split(",")) <= {r["queue"] for r in routes.values()}
    elif program == "python" and command[1] == "manage.py":
        from django.core.management import get_commands

        assert command[2] in get_commands(), f"manage.py has no command {command[2]!r}"
    else:
        pytest.fail(f"{name}: unknown program {program!r}")


def test_the_image_installs_what_the_commands_run():
    dependencies = " ".join(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]).lower()
    for package in ("gunicorn", "celery", "redis", "psycopg", "whitenoise", "dj-database-url", "accelerate"):
        assert package in dependencies, f"pyproject.toml does not install {package}"
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "collectstatic --noinput" in dockerfile  # hashed static files, served by WhiteNoise


@pytest.mark.parametrize("name", APP_SERVICES)
def test_every_variable_production_needs_is_given(name):
    env = service_env(name)
    missing = sorted(production_required_env() - set(env))
    assert not missing, f"{name} lacks {missing}"
    assert env["DJANGO_PROFILE"] == "production"
    assert env["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in env["DATABASE_URL"]
    assert env["CELERY_BROKER_URL"].startswith("redis://redis:6379/")


def test_the_web_health_check_passes_the_ssl_redirect():
    # Production redirects plain HTTP to HTTPS; the container's own probe is plain HTTP, so it
    # must say it came through the TLS proxy or it only ever sees a 301.
    probe = " ".join(SERVICES["web"]["healthcheck"]["test"])
    assert "/healthz" in probe and "X-Forwarded-Proto" in probe


def test_settings_load_and_pass_checks_with_the_web_containers_environment(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "DATABASE_", "CELERY_", "FEEDBACK_"))}
    env.update(service_env("web"))
    env["FEEDBACK_VAR_DIR"] = str(tmp_path)  # the image's /var/lib/feedback
    script = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({'debug': s.DEBUG, 'db': s.DATABASES['default']['ENGINE'], 'hosts': s.ALLOWED_HOSTS, "
        "'static': str(s.STATIC_ROOT), 'ssl': s.SECURE_SSL_REDIRECT, 'log': s.LOG_FORMAT}))"
    )
    env["DJANGO_SETTINGS_MODULE"] = "feedback_site.settings"
    loaded = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    import json

    values = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert values == {
        "debug": False,
        "db": "django.db.backends.postgresql",
        "hosts": ["feedback.example.org"],
        "static": str(tmp_path / "static"),
        "ssl": True,
        "log": "json",
    }
    check = subprocess.run([sys.executable, "manage.py", "check"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr[-2000:]
