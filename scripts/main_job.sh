#!/usr/bin/env bash
# The main job: provision the ComfyUI host if needed, run one Self-Cascade generation through it
# headless and print where the image was saved. Extra arguments go to scripts/main_job.py.
set -euo pipefail
cd "$(dirname "$0")/.."
host_python=$(python3 scripts/provision_host.py | sed -n 's/^python=//p')
exec "$host_python" scripts/main_job.py "$@"
