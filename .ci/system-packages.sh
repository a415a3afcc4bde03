#!/bin/sh
# Debian packages the test suite starts for real: nginx (the comparison harness and the
# secure_link test), chromium (the /_admin page and demo stream tests), nodejs (the
# JavaScript signer in docs/auth.md) and npm (`make vendor` fetches hls.js with it).
# Installed only when missing; needs root for apt.
set -eu
missing=""
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages:$missing (run as root: apt-get install -y$missing)" >&2
    exit 1
fi
apt-get update -q
# shellcheck disable=SC2086 # one word per package
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
