#!/usr/bin/env bash
# Headless Chromium for tests/e2e/test_web_page.py, from Debian's packages (no browser is
# downloaded by a test tool). Idempotent: does nothing when /usr/bin/chromium is there.
# Where it cannot install (no apt, no sudo, no package mirror) it says so and the browser
# test skips; the rest of the suite does not need a browser.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
if ! command -v apt-get >/dev/null 2>&1 || { [ -n "$SUDO" ] && ! command -v sudo >/dev/null 2>&1; }; then
    echo "ensure-browser: no apt-get (or sudo) here; tests/e2e/test_web_page.py will be skipped" >&2
    exit 0
fi
if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; }; then
    echo "ensure-browser: could not install chromium; tests/e2e/test_web_page.py will be skipped" >&2
fi
