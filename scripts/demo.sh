#!/usr/bin/env bash
# The main job (README): a multi-arch build against a local registry this script starts.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
exec .venv/bin/python scripts/demo.py "$@"
