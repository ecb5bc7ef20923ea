"""Fixtures of the closed-loop tests: a project with a base policy, staff, evaluation prompts.
The real-worker fixtures (Redis broker, celery worker subprocesses) come from tests/workers."""

from __future__ import annotations

import pytest

from tests.workers.conftest import redis_broker, start_worker, tiny_policy  # noqa: F401  (fixtures)


@pytest.fixture
def staff(make_user, project, add_member):
    user = make_user("loopstaff")
    add_member(project, user, "ml_staff")
    return user


@pytest.fixture
def policies(project, staff, tmp_path):
    """Version 0 (the builtin base) and a second policy version of the project."""
    from feedback_site.registry.models import ModelKind
    from feedback_site.registry.services import base_policy_register, version_register

    base = base_policy_register(project=project, created_by=staff)
    folder = tmp_path / "policy-v1"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    second = version_register(
        project=project,
        kind=ModelKind.POLICY,
        name="secret-finetune-zeta",
        artifact_uri=str(folder),
        base_model=base.artifact_uri,
        parent=base,
    )
    return base, second


@pytest.fixture
def eval_prompts(project):
    from feedback_site.annotation.models import Prompt, Split

    return [Prompt.objects.create(project=project, text=f"Held-out request {i}: plan a trip", split=Split.EVAL) for i in range(6)]
