#!/usr/bin/env bash
# The whole test suite on Debian's /usr/bin/python3 (README: "Run the tests").
# Installs what it needs first (idempotent); extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# pytest exits 5 when it collected no test: that is a failure here, as any non-zero code is.
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
