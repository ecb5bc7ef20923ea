"""Model-loading work of the closed loop, run by the gpu-queue tasks in workers/loop_tasks.py.

* Campaign generation: each version answers the campaign's prompts once (one model loaded at a
  time), then `campaign_complete` writes responses and pairs in one transaction. Sampling is a
  pure function of (seed, prompt id) (see rlhf.generation), so a redelivered task produces the
  same answers.
* Reward-model simulation: the reward model is loaded once and scores each leased pair.
"""

from __future__ import annotations

import gc
import logging
from pathlib import Path

from feedback_site.annotation.models import Prompt
from feedback_site.loop import services
from feedback_site.loop.models import Campaign, CampaignStatus

log = logging.getLogger(__name__)


def _model_folder(version) -> Path:
    from feedback_site.registry.services import version_model_dir

    return version_model_dir(version)


def run_campaign_generation(campaign_id: int) -> None:
    from rlhf.generation import SamplingConfig, iter_generate
    from rlhf.models import load_policy

    campaign = Campaign.objects.select_related("version_x", "version_y").filter(pk=campaign_id).first()
    if campaign is None or campaign.status != CampaignStatus.GENERATING:
        return
    try:
        prompts = {p.pk: p for p in Prompt.objects.filter(pk__in=campaign.prompt_ids)}
        ids = [pid for pid in campaign.prompt_ids if pid in prompts]
        sampling = SamplingConfig(**campaign.sampling)
        responses: dict[int, dict[int, str]] = {}
        for version in (campaign.version_x, campaign.version_y):
            model, tokenizer = load_policy(_model_folder(version))
            answers: dict[int, str] = {}
            for batch in iter_generate(
                None, [prompts[pid].messages() for pid in ids], 1, sampling, indices=ids, model=model, tokenizer=tokenizer
            ):
                for prompt_id, texts in zip(batch.indices, batch.responses):
                    answers[prompt_id] = texts[0]
            responses[version.pk] = answers
            del model
            gc.collect()
        services.campaign_complete(campaign_id=campaign_id, responses=responses)
    except Exception as error:
        log.exception("campaign %s failed", campaign_id)
        services.campaign_fail(campaign_id=campaign_id, message=f"{error.__class__.__name__}: {error}")
        raise


def run_reward_model_simulation(run_id: int) -> None:
    from feedback_site.loop.models import SimulationRun
    from rlhf.scoring import RewardModelScorer

    run = SimulationRun.objects.select_related("annotator__reward_model").filter(pk=run_id).first()
    if run is None or run.annotator.reward_model is None:
        return
    scorer = RewardModelScorer.load(_model_folder(run.annotator.reward_model), batch_size=2)

    def score(messages, text_a: str, text_b: str) -> tuple[float, float]:
        a, b = scorer.score([[*messages, {"role": "assistant", "content": text_a}], [*messages, {"role": "assistant", "content": text_b}]])
        return float(a), float(b)

    services.simulation_execute(run_id=run_id, scorer=score)
