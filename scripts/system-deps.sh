#!/bin/sh
# Install the system programs the tests drive, when missing: Debian's
# chromium and chromium-driver (browser tests), Node.js/npm (the real Vite
# build, axe-core) and nginx (the edge tests start their own instance).  Selenium Manager cannot download browsers here, so the tests
# use /usr/bin/chromium and /usr/bin/chromedriver.
set -eu
missing=""
[ -x /usr/bin/chromium ] || missing="$missing chromium"
[ -x /usr/bin/chromedriver ] || missing="$missing chromium-driver"
command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
[ -x /usr/sbin/nginx ] || missing="$missing nginx"
[ -z "$missing" ] && exit 0
echo "system-deps: installing$missing" >&2
if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086  # word splitting of the package list is intended
$sudo apt-get install -y -qq --no-install-recommends $missing
