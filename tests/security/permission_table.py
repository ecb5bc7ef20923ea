"""Who may reach which route: the declared permission table (deny by default).

Every URL pattern of the project must have a row here, keyed by its URL name (or by its route
string when it has no name). `tests/security/test_permission_table.py` walks every pattern as
each persona and compares the answer with the row; a pattern with no row fails that test.

Personas (built in tests/security/conftest.py, fixture `world`):
  anon      not logged in
  ann_a     annotator of project A (the project every id below belongs to)
  ann_b     annotator of project B only (a stranger to project A)
  staff_a   ML staff of project A
  admin_a   admin of project A (a project role, not a site superuser or site staff)

Outcomes (how an answer is classified, see `classify`):
  OK      got past the permission check: 2xx, a redirect that is not to a login page, or 400/405/409
          (the request was refused for its content or method, not for who sent it)
  LOGIN   sent to log in: a redirect to a login page, or 401 from the API
  DENIED  403 or 404 (non-members get 404 so project ids cannot be probed)

A key is a URL name ("api-members"), probed with the row's `probe` method (GET unless said), or
a URL name and a method ("api-members POST") for a further probe of the same route with a
different rule. Every method an API view accepts needs a row (the test says which are missing).
Probes with bodies are sent as the same persona in a fresh world per persona, GETs first.

Adding a route: add a row below with `row(...)` or one of the shortcuts. If the route takes a URL
argument the walker does not know (see `ID_KWARGS` in conftest.py), give it with
`kwargs={"your_id": "fixture key"}` and add that object to the `world` fixture (or a literal
with `kwargs={"decision": Value("release")}`). Routes that only
accept POST are probed with `probe="POST"` and an optional `data` body (JSON for /api/, form
fields otherwise); a body valid enough to reach the permission check is best.
"""

from __future__ import annotations

from dataclasses import dataclass, field

OK, LOGIN, DENIED = "OK", "LOGIN", "DENIED"
PERSONAS = ("anon", "ann_a", "ann_b", "staff_a", "admin_a")


@dataclass(frozen=True)
class Value:
    """A literal URL argument (not an object of the world), e.g. kwargs={"decision": Value("release")}."""

    value: object


@dataclass(frozen=True)
class Row:
    anon: str
    ann_a: str
    ann_b: str
    staff_a: str
    admin_a: str
    probe: str = "GET"
    data: dict | None = None
    kwargs: dict = field(default_factory=dict)

    def expected(self, persona: str) -> str:
        return getattr(self, persona)


def row(anon, ann_a, ann_b, staff_a, admin_a, **options) -> Row:
    return Row(anon, ann_a, ann_b, staff_a, admin_a, **options)


def public(**options) -> Row:
    return row(OK, OK, OK, OK, OK, **options)


def any_user(**options) -> Row:
    """Any logged-in user; what they see is filtered to their own projects."""
    return row(LOGIN, OK, OK, OK, OK, **options)


def member(**options) -> Row:
    """Every member of project A (annotators included)."""
    return row(LOGIN, OK, DENIED, OK, OK, **options)


def staff(**options) -> Row:
    """ML staff and admins of project A; annotators are refused."""
    return row(LOGIN, DENIED, DENIED, OK, OK, **options)


def admin(**options) -> Row:
    """Admins of project A only."""
    return row(LOGIN, DENIED, DENIED, DENIED, OK, **options)


def own_assignment(**options) -> Row:
    """Only the annotator holding the assignment (ann_a's lease in project A)."""
    return row(LOGIN, OK, DENIED, DENIED, DENIED, **options)


def nobody(**options) -> Row:
    """Site staff/superusers only (the Django admin): every persona here is sent to log in."""
    return row(LOGIN, LOGIN, LOGIN, LOGIN, LOGIN, **options)


TRAINING = {"run_id": "training_run"}
GENERATION = {"run_id": "generation_run"}
JUDGMENT_BODY = {"choice": "left", "strength": "clear"}

TABLE: dict[str, Row] = {
    # --- core -------------------------------------------------------------------------------
    "home": any_user(),
    "login": public(),
    "logout": public(),  # POST only (GET is 405 for everyone); logging out needs no permission
    "api-token": any_user(),
    # Site admins (is_staff/superuser) only; no persona here is one.
    "api-user-tokens-revoke": row(LOGIN, DENIED, DENIED, DENIED, DENIED, probe="POST"),
    "api-users": row(LOGIN, DENIED, DENIED, DENIED, DENIED),
    "api-users POST": row(LOGIN, DENIED, DENIED, DENIED, DENIED, data={"username": "probe-user"}),
    "api-user-token-issue": row(LOGIN, DENIED, DENIED, DENIED, DENIED, probe="POST"),
    "api-user-deactivate": row(LOGIN, DENIED, DENIED, DENIED, DENIED, probe="POST"),
    "api-token POST": any_user(),  # makes a new token for the caller
    "health": public(),
    "api-health": public(),
    # Site admins only: component health with a worker ping, and the operations page.
    "api-health-details": row(LOGIN, DENIED, DENIED, DENIED, DENIED),
    "ops-dashboard": row(LOGIN, DENIED, DENIED, DENIED, DENIED),
    "admin:index": nobody(),
    # The schema and API docs describe routes, not data; they are public on purpose.
    "api-schema": public(),
    "api-docs": public(),
    "api-redoc": public(),
    # --- projects (pages) ---------------------------------------------------------------------
    "project-create": row(LOGIN, DENIED, DENIED, DENIED, DENIED),  # site staff only
    "project-create POST": row(LOGIN, DENIED, DENIED, DENIED, DENIED),
    "project-detail": member(),
    "project-settings": admin(probe="POST"),
    "project-guideline-publish": staff(probe="POST"),
    "project-members": staff(),
    "project-member-add": admin(probe="POST"),
    "project-member-role": admin(probe="POST"),
    "project-member-remove": admin(probe="POST"),
    # ann_a2, not the victim: an earlier probe of the same persona may have removed the victim.
    "project-member-unpause": admin(probe="POST", kwargs={"user_id": "ann_a2"}),
    "project-imports": staff(),
    "project-imports POST": staff(),
    # --- projects (API) -----------------------------------------------------------------------
    "api-projects": any_user(),
    "api-projects POST": row(LOGIN, DENIED, DENIED, DENIED, DENIED, data={"name": "Probe"}),  # site staff only
    "api-project": member(),
    "api-project PATCH": admin(),
    "api-project-progress": staff(),
    "api-members": staff(),
    "api-members POST": admin(data={"username": "victim", "role": "ml_staff"}),
    "api-member": admin(probe="DELETE"),
    "api-guidelines": member(),
    "api-guidelines POST": staff(data={"text": "New guidelines"}),
    "api-imports": staff(),
    "api-imports POST": staff(),
    "api-prompts": staff(),
    "api-judgments": staff(),
    # --- annotation -----------------------------------------------------------------------------
    "annotate": member(),
    "api-assignment-next": member(probe="POST"),
    "api-my-progress": member(),
    "api-judgment": own_assignment(probe="POST", data=JUDGMENT_BODY),
    "api-skip": own_assignment(probe="POST"),
    "api-renew": own_assignment(probe="POST"),
    "api-pair-gold": staff(probe="POST", data={"gold": True, "gold_label": "a"}),
    "api-member-pause": admin(probe="POST", data={"reason": "probe"}, kwargs={"user_id": "ann_a2"}),
    "api-member-unpause": admin(probe="POST", kwargs={"user_id": "ann_a2"}),
    # --- generation -----------------------------------------------------------------------------
    "project-generate": staff(),
    "project-generate POST": staff(data={"k": "0"}),
    "generation-run": staff(kwargs=GENERATION),
    "generation-run-cancel": staff(probe="POST", kwargs=GENERATION),
    "api-model-versions": staff(),
    "api-generation-runs": staff(),
    "api-generation-runs POST": staff(data={"k": 0}),
    "api-generation-run": staff(kwargs=GENERATION),
    "api-generation-run-cancel": staff(probe="POST", kwargs=GENERATION),
    # --- snapshots ------------------------------------------------------------------------------
    "project-snapshots": staff(),
    "project-snapshots POST": staff(data={"aggregation": "no-such-rule"}),
    "api-snapshots": staff(),
    "api-snapshots POST": staff(data={"aggregation": "no-such-rule"}),
    "api-snapshot": staff(),
    "api-snapshot-download": staff(),
    # --- training and models --------------------------------------------------------------------
    "project-training": staff(),
    "project-training POST": staff(data={"method": "no-such-method"}),
    "project-models": staff(),
    "training-run": staff(kwargs=TRAINING),
    "training-run-cancel": staff(probe="POST", kwargs=TRAINING),
    "api-training-runs": staff(),
    "api-training-runs POST": staff(data={"method": "no-such-method"}),
    "api-training-run": staff(kwargs=TRAINING),
    "api-training-run-metrics": staff(kwargs=TRAINING),
    "api-training-run-cancel": staff(probe="POST", kwargs=TRAINING),
    # --- registry and evaluation (helper D1) -------------------------------------------------------
    "project-versions": staff(),
    "project-version-rollback": staff(probe="POST"),
    "version-promote": staff(probe="POST"),
    "version-download": staff(),
    "project-evaluation": staff(),
    "project-evaluation POST": staff(data={"action": "bogus"}),
    "evaluation-review": staff(),
    "evaluation-adversarial": staff(),
    "evaluation-adversarial POST": staff(data={"action": "bogus"}),
    "project-leaderboard": staff(),
    "evaluation-run": staff(kwargs={"run_id": "evaluation_run"}),
    "evaluation-sample-review": staff(probe="POST", kwargs={"sample_id": "flagged_sample"}),
    "api-versions": staff(),
    "api-version-rollback": staff(probe="POST"),
    "api-pointer-history": staff(),
    "api-version": staff(),
    "api-version-promote": staff(probe="POST"),
    "api-version-download": staff(),
    "api-evaluations": staff(),
    "api-evaluations POST": staff(data={"policy_id": None}),
    "api-evaluation": staff(kwargs={"run_id": "evaluation_run"}),
    "api-eval-prompts": staff(probe="POST", data={"jsonl": ""}),
    "api-heldout-pairs": staff(probe="POST", data={"jsonl": ""}),
    "api-adversarial-prompts": staff(),
    "api-adversarial-prompts POST": staff(data={"jsonl": "{not json"}),
    "api-adversarial-prompt": staff(probe="PATCH", data={"category": "bogus"}, kwargs={"prompt_id": "adversarial_prompt"}),
    "api-evaluation-review": staff(),
    "api-evaluation-sample-review": staff(probe="POST", kwargs={"sample_id": "flagged_sample"}),
    "api-leaderboard": staff(),
    # --- quality --------------------------------------------------------------------------------
    "api-quality-dashboard": staff(),
    "api-quality-me": member(),  # one's own statistics only
    "api-quality-disagreements": staff(),
    "api-quality-score-pairs": staff(probe="POST"),
    "api-pair-adjudication": staff(kwargs={"pair_id": "adjudicated_pair"}),
    "api-pair-adjudication PUT": staff(data={"label": "a", "note": "probe"}),
    "project-quality": staff(),
    "project-quality-score": staff(probe="POST", data={"reward_model": "0"}),
    "project-my-stats": member(),  # one's own statistics only
    "project-adjudication": staff(),
    "project-adjudicate": staff(probe="POST", data={"label": "a", "note": "probe"}),
    # --- safety screen (helper F) -----------------------------------------------------------------
    "project-safety": staff(),
    "project-safety POST": staff(data={"action": "warn", "rules": "[]", "threshold": "0"}),
    "safety-decide": staff(probe="POST", kwargs={"screen_id": "screen", "decision": Value("release")}),
    "api-safety-policy": staff(),
    "api-safety-policy PUT": staff(data={"action": "warn"}),
    "api-safety-policy PATCH": staff(data={"action": "review"}),
    "api-safety-flagged": staff(),
    "api-safety-release": staff(probe="POST", kwargs={"screen_id": "screen"}),
    "api-safety-reject": staff(probe="POST", kwargs={"screen_id": "screen"}),
    # --- playground (helper F) --------------------------------------------------------------------
    "project-playground": staff(),
    "api-playground-chats": staff(),
    "api-playground-chats POST": staff(data={"version_ids": []}),
    "api-playground-chat": staff(kwargs={"chat_id": "chat"}),
    "api-playground-send": staff(probe="POST", data={"content": ""}, kwargs={"chat_id": "chat"}),
    "api-playground-stop": staff(probe="POST", kwargs={"chat_id": "chat"}),
    "api-playground-rate": staff(probe="POST", data={"label": "probe"}, kwargs={"chat_id": "chat", "message_id": "chat_answer"}),
    "api-playground-save": staff(probe="POST", data={"kind": "bogus"}, kwargs={"chat_id": "chat"}),
    # --- demonstrations (helper F) -----------------------------------------------------------------
    "demonstrate": member(),
    "api-demo-tasks": staff(probe="POST", data={"mode": "bogus"}),
    "api-demo-next": member(probe="POST"),
    "api-demo-submit": own_assignment(probe="POST", data={"text": ""}, kwargs={"assignment_id": "demo_assignment"}),
    "api-demo-skip": own_assignment(probe="POST", kwargs={"assignment_id": "demo_assignment"}),
    "api-demo-snapshots": staff(),
    "api-demo-snapshots POST": staff(),
    "api-demo-snapshot-download": staff(kwargs={"snapshot_id": "demo_snapshot"}),
    # --- ratings (thumbs up / down) ------------------------------------------------------------------
    "rate": member(),
    "api-rating-tasks": staff(probe="POST", data={"overlap": 0}),
    "api-rating-next": member(probe="POST"),
    "api-rating-progress": member(),
    "api-rating-submit": own_assignment(probe="POST", data={"label": "maybe"}, kwargs={"assignment_id": "rating_assignment"}),
    "api-rating-skip": own_assignment(probe="POST", kwargs={"assignment_id": "rating_assignment"}),
    "api-rating-renew": own_assignment(probe="POST", kwargs={"assignment_id": "rating_assignment"}),
    "api-rating-snapshots": staff(),
    "api-rating-snapshots POST": staff(),
    "api-rating-snapshot-download": staff(kwargs={"snapshot_id": "rating_snapshot"}),
    "project-rating-tasks": staff(probe="POST", data={"ratings-overlap": "0"}),
    "project-rating-snapshot": staff(probe="POST"),
    "project-conversation-tasks": staff(probe="POST", data={"conversations-turns": "0"}),
    "project-conversation-snapshot": staff(probe="POST"),
    # --- rankings (K answers, best first) ------------------------------------------------------------
    "rank": member(),
    "api-ranking-tasks": staff(probe="POST", data={"overlap": 0}),
    "api-ranking-next": member(probe="POST"),
    "api-ranking-progress": member(),
    "api-ranking-submit": own_assignment(probe="POST", data={"ranks": "first"}, kwargs={"assignment_id": "ranking_assignment"}),
    "api-ranking-skip": own_assignment(probe="POST", kwargs={"assignment_id": "ranking_assignment"}),
    "api-ranking-renew": own_assignment(probe="POST", kwargs={"assignment_id": "ranking_assignment"}),
    # --- conversations (multi-turn trees) ----------------------------------------------------------
    "converse": member(),
    "api-conversation-tasks": staff(probe="POST", data={"turns": 0}),
    "api-conversation-next": member(probe="POST"),
    "api-conversation-progress": member(),
    "api-conversation-state": own_assignment(kwargs={"assignment_id": "conversation_assignment"}),
    "api-conversation-turn": own_assignment(
        probe="POST", data={"branch_point_id": "x"}, kwargs={"assignment_id": "conversation_assignment"}
    ),
    "api-conversation-retry": own_assignment(
        probe="POST", data={"branch_point_id": "x"}, kwargs={"assignment_id": "conversation_assignment"}
    ),
    "api-conversation-skip": own_assignment(probe="POST", kwargs={"assignment_id": "conversation_assignment"}),
    "api-conversation-renew": own_assignment(probe="POST", kwargs={"assignment_id": "conversation_assignment"}),
    "api-conversation-snapshots": staff(),
    "api-conversation-snapshots POST": staff(),
    "api-conversation-snapshot-download": staff(kwargs={"snapshot_id": "conversation_snapshot"}),
    # --- closed loop (helper D2): simulated annotators, blind campaigns, rounds -------------------
    "project-loop": staff(),
    "project-loop POST": staff(data={"action": "bogus"}),
    "loop-campaign": staff(kwargs={"campaign_id": "campaign"}),
    "loop-round": staff(kwargs={"round_id": "loop_round"}),
    "loop-round POST": staff(data={"action": "bogus"}, kwargs={"round_id": "loop_round"}),
    "api-simulated-annotators": staff(),
    "api-simulated-annotators POST": staff(data={"name": "probe", "rule": "bogus"}),
    "api-simulation-create": staff(probe="POST", data={"target": 0}, kwargs={"annotator_id": "simulated_annotator"}),
    "api-campaigns": staff(),
    "api-campaigns POST": staff(data={"version_x_id": 0, "version_y_id": 0}),
    "api-campaign": staff(kwargs={"campaign_id": "campaign"}),
    "api-rounds": staff(),
    "api-rounds POST": staff(data={"config": {"method": "bogus"}}),
    "api-round": staff(kwargs={"round_id": "loop_round"}),
    "api-round-advance": staff(probe="POST", kwargs={"round_id": "loop_round"}),
    "api-round-decide": staff(probe="POST", data={"promote": False}, kwargs={"round_id": "loop_round"}),
}


def classify(response) -> str:
    """OK / LOGIN / DENIED, or 'ERROR <status>' for anything the table cannot express (5xx)."""
    status = response.status_code
    if status >= 500:
        return f"ERROR {status}"
    if status in (301, 302, 303, 307, 308):
        location = response.get("Location", "")
        return LOGIN if ("/accounts/login/" in location or "/admin/login/" in location) else OK
    if status == 401:
        return LOGIN
    if status in (403, 404):
        return DENIED
    return OK


def split_key(key: str) -> tuple[str, str | None]:
    """'api-members POST' -> ('api-members', 'POST'); 'api-members' -> ('api-members', None)."""
    name, _, method = key.partition(" ")
    return name, (method or None)


def probe_method(key: str) -> str:
    return split_key(key)[1] or TABLE[key].probe
