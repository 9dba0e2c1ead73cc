#!/usr/bin/env bash
# Browser-test prerequisites, idempotent: Debian's Chromium, playwright-core (no browser download) and the
# newer ComfyUI frontend the tests also run on (tests/browser/frontend-requirements.txt; the host's own
# frontend comes with the host, scripts/provision_host.py).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
browser_dir="$here/tests/browser"

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "provision_browser: chromium is missing; install it as root: apt-get install -y chromium" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

if [ ! -f "$browser_dir/node_modules/playwright-core/package.json" ]; then
  # playwright-core never downloads a browser; the tests point it at /usr/bin/chromium
  (cd "$browser_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi

requirements="$browser_dir/frontend-requirements.txt"
frontend="$here/.host/frontends/newer"  # git-ignored, beside the host; never in its environment
if ! cmp -s "$requirements" "$frontend/requirements.txt"; then
  # a 30 MB wheel from the package registry, once per pin; a half-installed frontend is never served
  rm -rf "$frontend" "$frontend.partial"
  mkdir -p "$(dirname "$frontend")"
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --disable-pip-version-check --no-deps \
    --target "$frontend.partial" -r "$requirements"
  cp "$requirements" "$frontend.partial/requirements.txt"
  mv "$frontend.partial" "$frontend"
fi
