"""Command line: `python -m rlhf {generate,train,prepare-base} ...`.

Each subcommand lives next to the code it drives; this file only dispatches so that importing
one method never pulls in another's heavy dependencies.
"""

from __future__ import annotations

import sys

USAGE = """usage: python -m rlhf COMMAND [options]

commands:
  prepare-base   convert the bundled SmolLM2-135M-Instruct (or a tiny random model) to safetensors
  generate       sample K responses per prompt from a policy
  train          train a reward model or a policy: reward, sft, dpo, kto, ppo, rloo, grpo
"""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "prepare-base":
        from rlhf.models import cli
    elif command == "generate":
        from rlhf.generation import cli
    elif command == "train":
        from rlhf.training.cli import cli
    else:
        print(f"unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    return cli(rest)


if __name__ == "__main__":
    raise SystemExit(main())
