#!/usr/bin/env bash
# nginx for tests/e2e/test_proxy.py and tests/deploy/test_proxy_manifests.py, which run the shipped
# deploy/nginx/nginx.conf with the real binary in front of gunicorn, from Debian's packages
# (nginx-light, else nginx). Idempotent: does nothing when nginx is there. The tests run it as an
# unprivileged foreground process on a loopback port, so the package's own service is not started.
# Where it cannot install (no apt, no sudo, no package mirror) it says so and those tests skip; the
# rest of the suite does not need nginx.
set -euo pipefail
if [ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
if ! command -v apt-get >/dev/null 2>&1 || { [ -n "$SUDO" ] && ! command -v sudo >/dev/null 2>&1; }; then
    echo "ensure-proxy: no apt-get (or sudo) here; the nginx tests (tests/e2e/test_proxy.py) will be skipped" >&2
    exit 0
fi
# policy-rc.d 101: the package's install scripts do not start an nginx on port 80 (no init system in a container).
POLICY=/usr/sbin/policy-rc.d
ADDED_POLICY=""
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null && $SUDO chmod +x "$POLICY" && ADDED_POLICY=1
fi
install() {
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$1" >/dev/null
}
if ! { $SUDO apt-get update -qq && { install nginx-light || install nginx; }; }; then
    echo "ensure-proxy: could not install nginx; the nginx tests (tests/e2e/test_proxy.py) will be skipped" >&2
fi
if [ -n "$ADDED_POLICY" ]; then $SUDO rm -f "$POLICY"; fi
