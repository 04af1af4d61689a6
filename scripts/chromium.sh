#!/usr/bin/env bash
# Chromium for the browser tests (tests/test_web.py drives Debian's /usr/bin/chromium through Playwright, never
# `playwright install`): the one place `make test` and .ci/run get it from.
#   scripts/chromium.sh          install Debian's chromium when it is missing and this may install system packages
#                                (root, or sudo without a password; INSTALL_CHROMIUM=0 forbids it); about 30 s
#   scripts/chromium.sh --check  print one line when Chromium is missing: which tests did not run, and how to run them
# Exits 0 either way: without Chromium the browser tests skip (under CI=1 they fail), and `make test` says so.
set -euo pipefail
CHROMIUM=/usr/bin/chromium

if [ "${1:-}" = --check ]; then
  [ -x "$CHROMIUM" ] || echo "make test: the browser tests (tests/test_web.py, those that need Chromium) did not run:" \
    "$CHROMIUM is missing; install it with \`sudo apt-get install -y chromium\` (or, as root, scripts/chromium.sh)," \
    "then run make test again"
  exit 0
fi

[ -x "$CHROMIUM" ] && exit 0
[ "${INSTALL_CHROMIUM:-1}" != 0 ] || exit 0
command -v apt-get >/dev/null || exit 0
if [ "$(id -u)" = 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  exit 0  # not permitted here: --check says so after the tests
fi
echo "installing Debian's chromium for the browser tests (about 30 s; INSTALL_CHROMIUM=0 skips this)"
if ! { "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; then
  echo "scripts/chromium.sh: apt-get could not install chromium; the browser tests will not run" >&2
fi
exit 0
