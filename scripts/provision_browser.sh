#!/usr/bin/env bash
# Browser-test prerequisites, idempotent: Debian's Chromium and playwright-core (no browser download).
# The frontends come with the host: its pinned comfyui-frontend-package and, beside it, the newer one the
# browser tests also run on (scripts/provision_host.py, NEWER_FRONTEND).
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
