"""Generation throughput: batched generation vs a one-prompt-at-a-time loop, in one run.

What it measures
    The same N prompts (default 16 HH-RLHF user turns from /work/shared/data, or a built-in
    list), the same model (SmolLM2-135M-Instruct unless --model), the same sampling settings
    (default greedy, max_new_tokens 64) and the same process, twice:

    * batched   `rlhf.generation.iter_generate` with batch_size=16: left padding + attention
                mask, KV cache, prompts sorted by length;
    * loop      the same function called once per prompt (batch of one), which is what a naive
                `for prompt in prompts: model.generate(...)` does.

    tokens/s = new tokens actually decoded (up to and including EOS, as `GeneratedBatch.new_tokens`
    counts them) / wall seconds of the generation calls (model loading excluded; one warm-up call
    on one prompt before timing). With greedy decoding both paths decode the same tokens, so the
    token counts match and the ratio is a pure speed ratio; the script checks the texts match.

    Target (issue 4, item 8): ratio >= 5x at batch 16 on CPU.

Usage
    nice -n 10 .venv/bin/python benchmarks/generation_throughput.py            # SmolLM2, CPU
    .venv/bin/python benchmarks/generation_throughput.py --tiny --prompts 8    # smoke test
JSON with every number goes to --json-out (default benchmarks/results/generation_throughput.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FALLBACK_PROMPTS = [
    "Give me three tips for staying focused while studying.",
    "What is the difference between a virus and a bacterium?",
    "Write a short poem about autumn leaves.",
    "How do I boil an egg so the yolk stays soft?",
    "Explain what a hash function is to a ten-year-old.",
    "What should I pack for a weekend hiking trip?",
    "Summarise the plot of Romeo and Juliet in two sentences.",
    "How can I politely decline a meeting invitation?",
    "Why is the sky blue?",
    "Suggest a name for a small bakery.",
    "What are the health benefits of walking every day?",
    "How do I start learning to play the guitar?",
    "Explain compound interest with an example.",
    "What is a good way to remember people's names?",
    "Describe the water cycle briefly.",
    "Write a friendly reminder email about an unpaid invoice.",
]


def hh_prompts(count: int) -> list[str]:
    """First user turns of HH-RLHF test conversations, 40-400 characters, in file order."""
    import gzip

    root = Path("/work/shared/data/hh-rlhf")
    files = sorted(root.rglob("*test*.jsonl.gz")) if root.is_dir() else []
    out: list[str] = []
    for path in files:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                text = json.loads(line).get("chosen", "")
                if "\n\nHuman: " not in text:
                    continue
                first = text.split("\n\nHuman: ", 1)[1].split("\n\nAssistant:", 1)[0].strip()
                if 40 <= len(first) <= 400 and first not in out:
                    out.append(first)
                if len(out) >= count:
                    return out
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model folder or builtin:smollm2-135m-instruct (default)")
    parser.add_argument("--tiny", action="store_true", help="use a tiny random model (smoke test)")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads for both runs (default: torch's choice)")
    parser.add_argument("--cache-dir", type=Path, default=Path(os.environ.get("FEEDBACK_ARTIFACTS_DIR", "/tmp/rlhf-cache")))
    parser.add_argument("--json-out", type=Path, default=REPO / "benchmarks" / "results" / "generation_throughput.json")
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from rlhf.generation import SamplingConfig, iter_generate, memory_batch_limit
    from rlhf.models import BUILTIN_SMOLLM2, load_policy, make_tiny_model, pick_device, resolve_model_path

    if args.tiny:
        import tempfile

        model_path = make_tiny_model(Path(tempfile.mkdtemp()) / "tiny")
    else:
        model_path = resolve_model_path(args.model or BUILTIN_SMOLLM2, args.cache_dir)
    device, dtype = pick_device()
    model, tokenizer = load_policy(model_path, device=device, dtype=dtype)
    texts = (hh_prompts(args.prompts) + FALLBACK_PROMPTS)[: args.prompts]
    conversations = [[{"role": "user", "content": text}] for text in texts]

    def run(batch_size: int, subset=None) -> tuple[float, int, list[str]]:
        sampling = SamplingConfig(temperature=args.temperature, max_new_tokens=args.max_new_tokens, batch_size=batch_size, seed=0)
        chosen = conversations if subset is None else subset
        started = time.perf_counter()
        tokens = 0
        responses: dict[int, str] = {}
        if batch_size == 1:
            # The naive loop: one call per prompt.
            for index, conversation in enumerate(chosen):
                for batch in iter_generate(None, [conversation], 1, sampling, indices=[index], model=model, tokenizer=tokenizer):
                    tokens += batch.new_tokens
                    responses[index] = batch.responses[0][0]
        else:
            for batch in iter_generate(None, chosen, 1, sampling, model=model, tokenizer=tokenizer):
                tokens += batch.new_tokens
                for index, texts_ in zip(batch.indices, batch.responses, strict=True):
                    responses[index] = texts_[0]
        seconds = time.perf_counter() - started
        return seconds, tokens, [responses[i] for i in range(len(chosen))]

    run(1, conversations[:1])  # warm-up: first-call overheads (allocator, kernels) out of the timing
    batched_s, batched_tokens, batched_texts = run(args.batch_size)
    loop_s, loop_tokens, loop_texts = run(1)
    same = sum(a == b for a, b in zip(batched_texts, loop_texts))
    batched_tps, loop_tps = batched_tokens / batched_s, loop_tokens / loop_s
    prompt_lengths = [
        len(tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])
        for c in conversations
    ]
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs" + (f", {torch.cuda.get_device_name()}" if device.type == "cuda" else ""),
        "device": str(device),
        "dtype": str(dtype).replace("torch.", ""),
        "torch_threads": torch.get_num_threads(),
        "model": str(model_path) if args.tiny else (args.model or BUILTIN_SMOLLM2),
        "prompts": len(conversations),
        "prompt_tokens": {"min": min(prompt_lengths), "max": max(prompt_lengths)},
        "batch_size": args.batch_size,
        "memory_batch_limit": memory_batch_limit(model, max(prompt_lengths) + args.max_new_tokens),
        "max_new_tokens": args.max_new_tokens,
        "temperature": args.temperature,
        "batched": {"seconds": batched_s, "new_tokens": batched_tokens, "tokens_per_s": batched_tps},
        "loop": {"seconds": loop_s, "new_tokens": loop_tokens, "tokens_per_s": loop_tps},
        "speedup": batched_tps / loop_tps,
        "identical_texts": f"{same}/{len(conversations)}",
        "target": 5.0,
    }
    print(
        f"{result['model']} on {result['device']} ({result['dtype']}, {result['torch_threads']} threads), "
        f"{len(conversations)} prompts, max_new_tokens={args.max_new_tokens}, temperature={args.temperature}"
    )
    print(f"  batched (batch {args.batch_size}): {batched_tokens:5d} tokens in {batched_s:7.2f} s = {batched_tps:8.1f} tokens/s")
    print(f"  one at a time      : {loop_tokens:5d} tokens in {loop_s:7.2f} s = {loop_tps:8.1f} tokens/s")
    print(f"  speedup {result['speedup']:.2f}x (target >= 5x); identical texts {same}/{len(conversations)}")
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
