#!/usr/bin/env bash
# The test command: provision the ComfyUI test host if needed, then run the suite with the host's
# Python. Extra arguments go to pytest (e.g. `bash scripts/test.sh tests/unit -x`); without paths it
# runs the testpaths of pyproject.toml (tests/).
# COMFYUI_PATH (and COMFYUI_PYTHON) select your own ComfyUI instead of the one in .host/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/provision_browser.sh  # Chromium + playwright-core for tests/browser (idempotent)
host_python=$(python3 scripts/provision_host.py | sed -n 's/^python=//p')
exec "$host_python" -m pytest "$@"
