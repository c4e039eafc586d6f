#!/usr/bin/env bash
# Everything the tests need, from the project's files, then the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh test
bash scripts/setup-emulators.sh
bash scripts/setup-browser.sh
exec .venv/bin/python -m pytest "$@"
