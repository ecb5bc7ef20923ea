#!/usr/bin/env bash
# The lint step of `make test`: ruff's rules, ruff's formatting, and the layer order of
# docs/architecture.md (import-linter, configured in pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${VENV_BIN:-.venv/bin}"
"$BIN/ruff" check .
"$BIN/ruff" format --check .
"$BIN/lint-imports"
