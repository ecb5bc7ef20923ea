"""The training pages: launching a run from the form, the live run page, cancel, the models page,
and the admin for runs and metric points."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from feedback_site.registry.models import ModelKind, ModelVersion
from feedback_site.registry.services import version_register
from feedback_site.snapshots.models import Snapshot
from feedback_site.training import services
from feedback_site.training.forms import config_spec, method_defaults
from feedback_site.training.models import TrainingMetric, TrainingRun, TrainingStatus
from feedback_site.training.views import format_number

pytestmark = pytest.mark.django_db

TASK = "training.run"


# ------------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def snapshot(project, site_admin, tmp_path):
    return Snapshot.objects.create(
        project=project,
        number=1,
        content_hash="ab" * 32,
        aggregation="majority",
        artifact_dir=str(tmp_path),
        pair_count=12,
        preference_count=10,
        judgment_count=14,
        dropped_count=2,
        files={},
        created_by=site_admin,
    )


@pytest.fixture
def reward_version(project, snapshot, site_admin):
    return version_register(
        project=project,
        kind=ModelKind.REWARD,
        name="RM on snapshot 1",
        artifact_uri="/tmp/rm",
        base_model="builtin:smollm2-135m-instruct",
        parent=project.current_policy,
        snapshot=snapshot,
        metrics={"eval_accuracy": 0.6481, "eval_tie_fraction": 0.0123, "eval_margin": 1.25},
        created_by=site_admin,
    )


@pytest.fixture
def training_run(project, snapshot, site_admin, sent_tasks):
    run, _ = services.training_launch(project=project, actor=site_admin, method="dpo", snapshot=snapshot, config={"max_steps": 40})
    return run


def _form(project, snapshot, method="dpo", /, **changes):
    """What the browser posts for the untouched form of `method`, with `changes` applied."""
    spec = config_spec()
    data = {
        "method": method,
        "snapshot": snapshot.pk,
        "parent": project.current_policy_id,
        "reward_model": "",
        "fine_tuning": "full",
        "config_json": "",
    }
    for field in (*spec.common, *spec.lora):
        data[f"all__{field.name}"] = _as_posted(field.default)
    for each, fields in spec.per_method.items():
        for field in fields:
            data[f"{each}__{field.name}"] = _as_posted(field.default)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def _as_posted(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "on" if value else None
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


def _post(client, project, data):
    return client.post(reverse("project-training", args=[project.pk]), {k: v for k, v in data.items() if v is not None})


# ------------------------------------------------------------------------------------------------
# Access
# ------------------------------------------------------------------------------------------------

PAGES = ["project-training", "project-models", "training-run"]


def _url(name, project, run):
    return reverse(name, args=[run.pk if name == "training-run" else project.pk])


@pytest.mark.parametrize("name", PAGES)
def test_anonymous_is_sent_to_login(client, project, training_run, name):
    response = client.get(_url(name, project, training_run))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("name", PAGES)
def test_non_member_gets_404(login, outsider, project, training_run, name):
    response = login(outsider).get(_url(name, project, training_run))
    assert response.status_code == 404


@pytest.mark.parametrize("name", PAGES)
def test_annotator_gets_403(login, annotator, project, training_run, name):
    response = login(annotator).get(_url(name, project, training_run))
    assert response.status_code == 403
    assert b"does not allow this" in response.content


@pytest.mark.parametrize("name", PAGES)
@pytest.mark.parametrize("who", ["site_admin", "ml_staff", "superuser"])
def test_staff_get_200(request, login, project, training_run, name, who):
    response = login(request.getfixturevalue(who)).get(_url(name, project, training_run))
    assert response.status_code == 200


def test_annotator_cannot_launch_or_cancel(login, annotator, project, snapshot, training_run, sent_tasks):
    client = login(annotator)
    assert _post(client, project, _form(project, snapshot, "reward")).status_code == 403
    assert client.post(reverse("training-run-cancel", args=[training_run.pk])).status_code == 403
    training_run.refresh_from_db()
    assert TrainingRun.objects.count() == 1 and not training_run.cancel_requested


def test_tabs_link_training_and_models(login, ml_staff, project):
    html = login(ml_staff).get(reverse("project-detail", args=[project.pk])).content.decode()
    assert f'href="{reverse("project-training", args=[project.pk])}"' in html
    assert f'href="{reverse("project-models", args=[project.pk])}"' in html


# ------------------------------------------------------------------------------------------------
# The launch form
# ------------------------------------------------------------------------------------------------


def _input_value(html, name):
    match = re.search(r'<input[^>]*name="%s"[^>]*>' % re.escape(name), html)
    assert match, name
    value = re.search(r'value="([^"]*)"', match.group(0))
    return value.group(1) if value else None


def test_form_shows_each_methods_defaults_and_field_docs(login, ml_staff, project, snapshot, reward_version):
    response = login(ml_staff).get(reverse("project-training", args=[project.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    spec = config_spec()
    for method, fields in spec.per_method.items():
        defaults = method_defaults(method)
        assert f'data-method-section="{method}"' in html
        for field in fields:
            if field.kind in ("int", "float", "text"):
                shown = _input_value(html, f"{method}__{field.name}")
                expected = defaults[field.name]
                assert (
                    (shown in (None, "") if expected is None else float(shown) == float(expected))
                    if field.kind != "text"
                    else shown == expected
                ), (method, field.name)
    # Per-method defaults really differ, and each is pre-filled in its own section.
    assert float(_input_value(html, "reward__learning_rate")) == method_defaults("reward")["learning_rate"] == 2e-05
    assert float(_input_value(html, "dpo__learning_rate")) == method_defaults("dpo")["learning_rate"]
    assert _input_value(html, "dpo__loss_type") == "sigmoid"
    assert re.search(r'<option value="dapo" selected>', html)  # grpo loss_type
    assert _input_value(html, "all__lora_target_modules") == "all-linear"
    # Field documentation from the config dataclasses' docstrings is shown as help.
    assert "Clip range ε of the policy ratio." in html
    assert "Passes over the training data; ignored when `max_steps` is set." in html
    # Inputs: this project's snapshot, parent defaulting to the current policy, reward versions.
    assert "Snapshot 1 · 10 preferences" in html
    assert re.search(r'<option value="%d" selected>v0 · [^<]*\(current\)</option>' % project.current_policy_id, html)
    assert f'<option value="{reward_version.pk}" selected>v{reward_version.number} · RM on snapshot 1</option>' in html
    assert 'data-needs-reward="grpo ppo rloo"' in html
    assert 'src="/static/training/training_form.js"' in html
    # The chosen method's section is visible, the others hidden until the method changes.
    assert re.search(r'data-method-section="dpo">', html) and re.search(r'data-method-section="ppo" hidden>', html)


def test_without_snapshot_the_page_explains_and_disables_launch(login, ml_staff, project):
    html = login(ml_staff).get(reverse("project-training", args=[project.pk])).content.decode()
    assert "No snapshot yet." in html
    assert re.search(r'<button type="submit" class="primary" disabled>Start training</button>', html)


@pytest.fixture
def demonstrations(project, site_admin, annotator):
    from tests.demonstrations.helpers import make_demonstration_snapshot, toy_items

    return make_demonstration_snapshot(project, staff=site_admin, annotator=annotator, items=toy_items(3))


def test_form_offers_sft_with_its_defaults_and_a_demonstration_snapshot_picker(login, ml_staff, project, snapshot, demonstrations):
    html = login(ml_staff).get(reverse("project-training", args=[project.pk])).content.decode()
    assert re.search(r'<input type="radio" name="method" value="sft" id="id_method_\d+">', html)
    assert "Supervised fine-tuning on a demonstration snapshot" in html
    # SFT's own defaults (from SFTConfig), in its own section, hidden while DPO is chosen.
    assert re.search(r'data-method-section="sft" hidden>', html)
    defaults = method_defaults("sft")
    assert float(_input_value(html, "sft__learning_rate")) == defaults["learning_rate"] == 2e-05
    assert int(_input_value(html, "sft__batch_size")) == defaults["batch_size"] == 8
    assert float(_input_value(html, "sft__eval_fraction")) == defaults["eval_fraction"]
    assert re.search(r'<input type="checkbox" name="sft__completion_only_loss"[^>]*checked', html)
    assert "Train on the final assistant answer only" in html  # the field's docstring as help
    # The demonstration snapshot picker, shown instead of the preference snapshot for SFT.
    assert 'data-needs-demonstrations="sft"' in html
    assert re.search(r'<div id="demonstration-snapshot-field" hidden>', html) and '<div id="snapshot-field">' in html
    assert (
        f'<option value="{demonstrations.pk}" selected>Demonstration snapshot {demonstrations.number} · 3 demonstrations · '
        f"{demonstrations.content_hash[:10]}</option>"
    ) in html


def test_sft_launch_from_the_form_uses_the_demonstration_snapshot(login, ml_staff, project, snapshot, demonstrations, sent_tasks):
    client = login(ml_staff)
    response = _post(
        client,
        project,
        _form(project, snapshot, "sft", demonstration_snapshot=str(demonstrations.pk), sft__learning_rate="1e-4", fine_tuning="lora"),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    run = TrainingRun.objects.get()
    # The preference snapshot the page also posted is dropped: SFT reads demonstrations only.
    assert (run.method, run.snapshot, run.demonstration_snapshot, run.parent_id) == ("sft", None, demonstrations, project.current_policy_id)
    assert run.config == services.validate_training_config("sft", {"learning_rate": 1e-4, "use_lora": True})
    assert sent_tasks == [(TASK, (run.pk,))]
    html = client.get(response["Location"]).content.decode()
    assert f"SFT run {run.pk} queued." in html and f"Demonstration snapshot {demonstrations.number} (3 demonstrations)" in html


def test_sft_errors_keep_the_demonstration_picker_in_view(login, ml_staff, project, snapshot, demonstrations, sent_tasks):
    html = _post(
        login(ml_staff), project, _form(project, snapshot, "sft", demonstration_snapshot=str(demonstrations.pk), sft__eval_fraction="1.5")
    ).content.decode()
    assert "eval_fraction: must be &gt;= 0 and &lt; 1" in html
    assert '<div id="demonstration-snapshot-field">' in html and re.search(r'<div id="snapshot-field" hidden>', html)
    assert re.search(r'data-method-section="sft">', html)
    assert not TrainingRun.objects.exists() and sent_tasks == []


def test_demonstrations_alone_are_enough_to_launch(login, ml_staff, project, demonstrations):
    html = login(ml_staff).get(reverse("project-training", args=[project.pk])).content.decode()
    assert "No snapshot yet." not in html
    assert re.search(r'<button type="submit" class="primary">Start training</button>', html)


def test_valid_launch_creates_a_run_and_publishes_one_task(login, ml_staff, project, snapshot, sent_tasks):
    client = login(ml_staff)
    data = _form(
        project,
        snapshot,
        "dpo",
        dpo__beta="0.2",
        dpo__learning_rate="5e-6",
        all__max_steps="30",
        fine_tuning="lora",
        all__lora_r="8",
        config_json='{"warmup_ratio": 0.1}',
    )
    response = _post(client, project, data)
    run = TrainingRun.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("training-run", args=[run.pk])
    assert sent_tasks == [(TASK, (run.pk,))]
    assert (run.method, run.snapshot, run.parent_id, run.reward_model, run.created_by) == (
        "dpo",
        snapshot,
        project.current_policy_id,
        None,
        ml_staff,
    )
    assert run.status == TrainingStatus.QUEUED
    expected = services.validate_training_config(
        "dpo", {"beta": 0.2, "learning_rate": 5e-6, "max_steps": 30, "use_lora": True, "lora_r": 8, "warmup_ratio": 0.1}
    )
    assert run.config == expected  # every other field is the method's default

    html = client.get(response["Location"]).content.decode()
    assert f"DPO run {run.pk} queued." in html
    assert "Cancel run" in html
    assert f'data-metrics-url="{reverse("api-training-run-metrics", args=[run.pk])}"' in html


def test_reward_model_launch_ignores_a_reward_model_choice(login, ml_staff, project, snapshot, reward_version, sent_tasks):
    response = _post(login(ml_staff), project, _form(project, snapshot, "reward", reward_model=str(reward_version.pk)))
    assert response.status_code == 302
    run = TrainingRun.objects.get()
    assert run.method == "reward" and run.reward_model is None
    assert run.config == method_defaults("reward")
    assert sent_tasks == [(TASK, (run.pk,))]


def test_ppo_launch_with_a_reward_model(login, ml_staff, project, snapshot, reward_version, sent_tasks):
    response = _post(login(ml_staff), project, _form(project, snapshot, "ppo", reward_model=str(reward_version.pk), ppo__kl_coef="0.1"))
    assert response.status_code == 302, response.content.decode()[:3000]
    run = TrainingRun.objects.get()
    assert (run.method, run.reward_model) == ("ppo", reward_version)
    assert run.config["kl_coef"] == 0.1
    assert sent_tasks == [(TASK, (run.pk,))]


@pytest.mark.parametrize(
    "method, changes, message",
    [
        ("dpo", {"dpo__learning_rate": "-1e-5"}, "learning_rate: must be &gt; 0, got"),
        ("reward", {"reward__learning_rate": "0"}, "learning_rate: must be &gt; 0, got"),
        ("dpo", {"config_json": '{"not_a_field": 1}'}, "unknown field &#x27;not_a_field&#x27; for the dpo config"),
        ("ppo", {}, "needs a reward"),
        ("grpo", {"reward_model": ""}, "needs a reward"),
        ("dpo", {"dpo__beta": "lots"}, "Enter a number."),
        ("dpo", {"all__warmup_ratio": "1.5"}, "warmup_ratio: must be &gt;= 0 and &lt; 1"),
        ("dpo", {"config_json": "{not json"}, "Not valid JSON"),
        ("dpo", {"config_json": "[1, 2]"}, "Enter a JSON object"),
        ("dpo", {"snapshot": "999999"}, "Select a valid choice"),
        ("dpo", {"method": "magic"}, "Select a valid choice"),
        ("sft", {}, "sft needs a demonstration snapshot"),
        ("sft", {"demonstration_snapshot": "999999"}, "Select a valid choice"),
    ],
)
def test_invalid_launch_rerenders_with_the_message_and_creates_nothing(
    login, ml_staff, project, snapshot, sent_tasks, method, changes, message
):
    response = _post(login(ml_staff), project, _form(project, snapshot, method, **changes))
    assert response.status_code == 400
    html = response.content.decode()
    summary = re.search(r'<ul class="error-summary">(.*?)</ul>', html, re.S)
    assert summary and message in summary.group(1)
    assert "The run was not started." in html
    assert not TrainingRun.objects.exists()
    assert sent_tasks == []


def test_service_error_is_shown_next_to_its_field(login, ml_staff, project, snapshot, sent_tasks):
    html = _post(login(ml_staff), project, _form(project, snapshot, "dpo", dpo__learning_rate="-1")).content.decode()
    field = re.search(r'<div class="field config-field has-error">.*?</div>', html, re.S)
    assert field and 'name="dpo__learning_rate"' in field.group(0)
    assert 'value="-1"' in field.group(0)  # the user's value is kept
    assert "learning_rate: must be &gt; 0, got" in field.group(0)


def test_errors_in_another_methods_hidden_fields_do_not_block(login, ml_staff, project, snapshot, sent_tasks):
    response = _post(login(ml_staff), project, _form(project, snapshot, "dpo", ppo__kl_coef="not a number"))
    assert response.status_code == 302
    assert TrainingRun.objects.get().method == "dpo"


def test_repeated_identical_launch_gives_one_run(login, ml_staff, project, snapshot, sent_tasks):
    client = login(ml_staff)
    data = _form(project, snapshot, "dpo", all__max_steps="12")
    first = _post(client, project, data)
    second = _post(client, project, data)
    run = TrainingRun.objects.get()
    assert first["Location"] == second["Location"] == reverse("training-run", args=[run.pk])
    assert sent_tasks == [(TASK, (run.pk,))]
    html = client.get(second["Location"]).content.decode()
    assert f"The same run (#{run.pk}, same method, data, parent and config) is already queued" in html


def test_broker_down_gives_503_with_the_reason(login, ml_staff, project, snapshot, broker_down):
    response = _post(login(ml_staff), project, _form(project, snapshot, "dpo"))
    assert response.status_code == 503
    html = response.content.decode()
    assert "The task queue is unavailable" in html and "The run was not started." in html
    run = TrainingRun.objects.get()  # recorded as failed with the reason, so it is not silently lost
    assert run.status == TrainingStatus.FAILED and "unavailable" in run.message


def test_training_page_lists_runs(login, ml_staff, project, training_run):
    services.training_report(run_id=training_run.pk, step=10, total=40, metrics={"loss": 0.5}, eta_seconds=30)
    html = login(ml_staff).get(reverse("project-training", args=[project.pk])).content.decode()
    assert f'href="{reverse("training-run", args=[training_run.pk])}">#{training_run.pk}</a>' in html
    assert "10 / 40 steps" in html and 'data-width="25"' in html
    assert '<span class="status status-queued">Queued</span>' in html


# ------------------------------------------------------------------------------------------------
# The run page
# ------------------------------------------------------------------------------------------------


def _run_html(client, run):
    response = client.get(reverse("training-run", args=[run.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_run_page_shows_progress_metrics_and_config(login, ml_staff, training_run):
    services.training_claim(run_id=training_run.pk)
    for step in range(1, 21):
        services.training_report(
            run_id=training_run.pk,
            step=step,
            total=40,
            eta_seconds=125.0,
            metrics={
                "loss": 0.7 - step * 0.01,
                "learning_rate": 1e-6,
                "tokens_per_s": 1530.4,
                "rewards/margins": 0.01 * step,
                "rewards/accuracies": 0.75,
                "my_custom": 3.0,
            },
        )
    html = _run_html(login(ml_staff), training_run)
    assert 'data-field="step">20<' in html and 'data-field="total_steps">40<' in html and 'data-field="percent">50<' in html
    assert "2 min 05 s" in html  # ETA
    assert 'data-field="loss">0.5<' in html and 'data-field="learning_rate">1e-6<' in html and 'data-field="tokens_per_s">1530<' in html
    assert "Preference accuracy" in html and "Reward margin" in html and '<code class="key">rewards/margins</code>' in html
    assert "my_custom" in html  # unknown keys shown under their own name
    # The config, with its hash, and what differs from the default marked.
    assert training_run.config_hash[:16] in html and training_run.config_hash in html
    assert '<div class="changed" title="changed from the default"><dt>max_steps</dt><dd>40</dd></div>' in html
    assert '<div><dt>ld_alpha</dt><dd><span class="muted">none</span></dd></div>' in html
    # Charts are drawn in the browser from the metrics endpoint.
    spec = json.loads(re.search(r'<script id="chart-spec" type="application/json">(.*?)</script>', html, re.S).group(1))
    assert spec["groups"][0]["title"] == "Loss" and spec["groups"][1]["title"] == "Learning rate"
    assert spec["labels"]["kl"] == "KL to reference"
    assert 'src="/static/vendor/chart.js/chart.umd.min.js"' in html and 'src="/static/core/charts.js"' in html
    assert html.index('src="/static/core/charts.js"') < html.index('src="/static/training/run_live.js"')
    assert "attempt" in html


def test_metrics_endpoint_feeds_the_charts(login, ml_staff, training_run):
    for step in (1, 2, 3):
        services.training_report(run_id=training_run.pk, step=step, total=3, metrics={"loss": 1.0 / step}, eta_seconds=None)
    client = login(ml_staff)
    url = reverse("api-training-run-metrics", args=[training_run.pk])
    assert [p["step"] for p in client.get(url).json()] == [1, 2, 3]
    assert [p["values"]["loss"] for p in client.get(url, {"after": 2}).json()] == [1 / 3]


def test_run_page_is_escape_safe(login, ml_staff, training_run):
    TrainingRun.objects.filter(pk=training_run.pk).update(
        message="<script>alert('message')</script>",
        log_tail="step 1 <script>alert('log')</script>\n<img src=x onerror=alert(1)>",
        latest_metrics={"<b>evil</b>": 1.0, "loss": 0.25},
    )
    html = _run_html(login(ml_staff), training_run)
    assert "<script>alert(" not in html and "<img src=x" not in html and "<b>evil</b>" not in html
    assert "&lt;script&gt;alert(&#x27;message&#x27;)&lt;/script&gt;" in html
    assert "&lt;script&gt;alert(&#x27;log&#x27;)&lt;/script&gt;" in html
    assert "&lt;b&gt;evil&lt;/b&gt;" in html


def test_run_page_shows_attempts_output_version_and_no_cancel_when_done(login, ml_staff, project, training_run):
    services.training_claim(run_id=training_run.pk)
    TrainingRun.objects.filter(pk=training_run.pk).update(heartbeat_at=None)  # the worker died
    services.training_claim(run_id=training_run.pk)  # a redelivered task resumes it
    services.training_report(run_id=training_run.pk, step=40, total=40, metrics={"loss": 0.2}, eta_seconds=0)
    version = services.training_succeed(
        run_id=training_run.pk,
        artifact_dir="/tmp/out",
        metrics={"eval_rewards/margins": 0.42},
        code_version="abc",
        base_model="builtin:smollm2-135m-instruct",
    )
    html = _run_html(login(ml_staff), training_run)
    assert "Cancel run" not in html
    assert 'data-field="attempts">2<' in html and "resumed 1× after a lost worker" in html
    assert "worker lost; resuming from the last checkpoint" in html
    assert f"{reverse('project-models', args=[project.pk])}#version-{version.pk}" in html
    assert f"Policy v{version.number} · {version.name}" in html
    assert '<span class="status status-succeeded" data-field="status">Succeeded</span>' in html


def test_cancel_a_queued_run(login, ml_staff, training_run):
    client = login(ml_staff)
    response = client.post(reverse("training-run-cancel", args=[training_run.pk]))
    assert response.status_code == 302 and response["Location"] == reverse("training-run", args=[training_run.pk])
    training_run.refresh_from_db()
    assert training_run.status == TrainingStatus.CANCELLED
    html = client.get(response["Location"]).content.decode()
    assert "Run cancelled before it started." in html and "Cancel run" not in html


def test_cancel_a_running_run_asks_the_worker(login, ml_staff, training_run):
    services.training_claim(run_id=training_run.pk)
    client = login(ml_staff)
    response = client.post(reverse("training-run-cancel", args=[training_run.pk]))
    training_run.refresh_from_db()
    assert training_run.status == TrainingStatus.RUNNING and training_run.cancel_requested
    html = client.get(response["Location"]).content.decode()
    assert "Cancel requested; the worker stops at the next step" in html and "Cancelling…" in html


def test_cancel_a_finished_run_is_a_409_with_the_reason(login, ml_staff, training_run):
    services.training_fail(run_id=training_run.pk, message="out of memory")
    response = login(ml_staff).post(reverse("training-run-cancel", args=[training_run.pk]))
    assert response.status_code == 409
    assert "This run already failed." in response.content.decode()


def test_cancel_needs_post_and_unknown_run_is_404(login, ml_staff, training_run):
    client = login(ml_staff)
    assert client.get(reverse("training-run-cancel", args=[training_run.pk])).status_code == 405
    assert client.get(reverse("training-run", args=[999999])).status_code == 404


# ------------------------------------------------------------------------------------------------
# Models page
# ------------------------------------------------------------------------------------------------


def test_models_page_lists_versions_marks_current_and_links_runs(login, ml_staff, project, reward_version, training_run):
    services.training_claim(run_id=training_run.pk)
    version = services.training_succeed(
        run_id=training_run.pk,
        artifact_dir="/tmp/out",
        metrics={"eval_rewards/accuracies": 0.71, "eval_rewards/margins": 0.42, "loss": 0.3},
        code_version="abc",
        base_model="builtin:smollm2-135m-instruct",
    )
    client = login(ml_staff)
    html = client.get(reverse("project-models", args=[project.pk])).content.decode()
    base = project.current_policy
    assert re.search(r'<tr id="version-%d" class="current">' % base.pk, html)
    assert "current policy</span>" in html
    assert f'id="version-{reward_version.pk}"' in html and f'id="version-{version.pk}"' in html
    assert "Reward model" in html and "Held-out accuracy" in html and "0.6481" in html
    assert f'href="{reverse("training-run", args=[training_run.pk])}">#{training_run.pk}</a>' in html
    assert "0.71" in html and "0.42" in html
    assert "Draft (not evaluated)" in html
    assert f'href="#version-{base.pk}">v0</a>' in html  # parents link within the page
    assert "#1 <span" in html  # snapshot

    rewards_only = client.get(reverse("project-models", args=[project.pk]), {"kind": "reward"}).content.decode()
    assert f'id="version-{reward_version.pk}"' in rewards_only and f'id="version-{base.pk}"' not in rewards_only


def test_models_page_query_count_does_not_grow_with_versions(login, ml_staff, project, snapshot, django_assert_max_num_queries):
    for n in range(8):
        version_register(
            project=project,
            kind=ModelKind.POLICY,
            name=f"p{n}",
            artifact_uri="/x",
            base_model="b",
            parent=project.current_policy,
            snapshot=snapshot,
        )
    client = login(ml_staff)
    with django_assert_max_num_queries(8):
        assert client.get(reverse("project-models", args=[project.pk])).status_code == 200
    assert ModelVersion.objects.filter(project=project).count() == 9


# ------------------------------------------------------------------------------------------------
# Admin and formatting
# ------------------------------------------------------------------------------------------------


def test_admin_shows_runs_and_metric_points_read_only(login, superuser, training_run):
    services.training_report(run_id=training_run.pk, step=1, total=2, metrics={"loss": 1.0}, eta_seconds=None)
    client = login(superuser)
    point = TrainingMetric.objects.get()
    for model, obj in ((TrainingRun, training_run), (TrainingMetric, point)):
        base = f"admin:training_{model._meta.model_name}"
        assert client.get(reverse(f"{base}_changelist")).status_code == 200
        assert client.get(reverse(f"{base}_changelist"), {"q": "a"}).status_code == 200
        assert client.get(reverse(f"{base}_change", args=[obj.pk])).status_code == 200
        assert client.get(reverse(f"{base}_add")).status_code == 403
        assert client.get(reverse(f"{base}_delete", args=[obj.pk])).status_code == 403
    assert (
        client.get(reverse("admin:training_trainingrun_changelist"), {"status__exact": "queued", "method__exact": "dpo"}).status_code == 200
    )


@pytest.mark.parametrize(
    "value, text",
    [
        (0, "0"),
        (2e-05, "2e-5"),
        (1e-6, "1e-6"),
        (0.693147, "0.6931"),
        (1530.4, "1530"),
        (123456.0, "123500"),
        (2.5e7, "2.5e+7"),
        (-0.25, "-0.25"),
        (1.0, "1"),
        (0.001, "0.001"),
        (1234.5, "1235"),
        (-3.2e-9, "-3.2e-9"),
        (9.9996e-5, "1e-4"),
        (999999.9, "1000000"),
    ],
)
def test_number_format_matches_the_pages_javascript(value, text):
    assert format_number(value) == text


# ------------------------------------------------------------------------------------------------
# In a real browser: the form's method switch, and the run page updating without a reload
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def browser_page(browser, live_server):
    from django.db import connections

    context = browser.new_context(viewport={"width": 1366, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.js_errors = []
    page.on("pageerror", lambda error: page.js_errors.append(str(error)))
    yield page
    context.close()
    # The ORM calls made while Playwright's loop ran used their own connection; close it so
    # that the test database can be dropped at the end of the session.
    connections.close_all()


def _log_in(page, live_server, user):
    from django.test import Client

    client = Client()
    client.force_login(user)
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_browser_form_switches_method_and_run_page_updates_live(
    browser_page, live_server, site_admin, project, snapshot, reward_version, sent_tasks
):
    page = browser_page
    _log_in(page, live_server, site_admin)

    # The form: switching method shows that method's settings and the reward-model picker.
    page.goto(live_server.url + reverse("project-training", args=[project.pk]))
    assert page.is_visible('[data-method-section="dpo"]') and not page.is_visible('[data-method-section="ppo"]')
    assert not page.is_visible("#id_reward_model")
    page.check('input[name="method"][value="ppo"]')
    assert page.is_visible('[data-method-section="ppo"]') and not page.is_visible('[data-method-section="dpo"]')
    assert page.is_visible("#id_reward_model") and page.input_value("#id_ppo__kl_coef") == "0.05"
    assert not page.is_visible("#id_all__lora_r")
    page.check('input[name="fine_tuning"][value="lora"]')
    assert page.is_visible("#id_all__lora_r")
    page.check('input[name="method"][value="dpo"]')
    assert not page.is_visible("#id_reward_model") and page.is_visible("#id_dpo__beta")
    page.fill("#id_dpo__beta", "0.2")
    assert "changed" in page.get_attribute("#id_dpo__beta", "class")
    assert "changed" not in (page.get_attribute("#id_dpo__learning_rate", "class") or "")
    page.click("text=Start training")
    page.wait_for_url(f"{live_server.url}/training/*/")
    run = TrainingRun.objects.get()
    assert (run.method, run.reward_model_id, run.config["beta"], run.config["use_lora"]) == ("dpo", None, 0.2, True)

    # The run page: points logged while it is open appear in the charts without a reload.
    services.training_claim(run_id=run.pk)
    for step in range(1, 6):
        services.training_report(
            run_id=run.pk,
            step=step,
            total=20,
            eta_seconds=60,
            metrics={"loss": 1 / step, "learning_rate": 1e-6, "kl": 0.01 * step, "reward": 0.1 * step},
        )
    page.reload()
    page.wait_for_selector("figure.chart")
    titles = page.locator("figure.chart h3 .title").all_text_contents()
    assert titles[:2] == ["Loss", "Learning rate"] and "KL" in titles and "Reward" in titles
    page.evaluate("window.__marker = 'same page'")
    for step in range(6, 11):
        services.training_report(run_id=run.pk, step=step, total=20, eta_seconds=30, metrics={"loss": 1 / step, "kl": 0.05})
    services.training_log(run_id=run.pk, line="<script>window.__pwned = true</script>")
    page.wait_for_function("() => document.querySelector('[data-field=\"step\"]').textContent === '10'")
    page.wait_for_function("() => document.querySelector('figure.chart .at').textContent === 'step 10'")
    assert page.evaluate("window.__marker") == "same page"  # not reloaded
    assert page.text_content('[data-field="percent"]') == "50"
    assert "<script>window.__pwned = true</script>" in page.text_content('[data-field="log_tail"]')
    assert page.evaluate("window.__pwned === undefined")
    # The loss chart is a Chart.js chart holding the ten points of loss.
    points = page.evaluate("Chart.getChart(document.querySelector('figure.chart canvas')).data.datasets[0].data.map(p => p.x)")
    assert points == list(range(1, 11))

    # Finishing stops the polling and hides Cancel.
    services.training_succeed(run_id=run.pk, artifact_dir="/tmp/out", metrics={"reward": 0.9}, code_version="x", base_model="b")
    page.wait_for_function("() => document.querySelector('[data-field=\"status\"]').textContent === 'Succeeded'")
    assert not page.is_visible("#cancel-form")
    assert page.is_visible('[data-field="output-link"]')
    page.wait_for_function("() => document.querySelector('[data-field=\"live-note\"]').textContent === 'finished'")
    assert page.js_errors == []
