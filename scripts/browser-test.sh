#!/usr/bin/env bash
# The drawing page in a real browser: Debian's headless Chromium driven by Playwright
# (playwright-core, the library without its own browsers). Run by tests/serve_browser.rs, which
# starts `mnist serve` first; by hand:
#   mnist serve --addr 127.0.0.1:8080 &
#   scripts/browser-test.sh http://127.0.0.1:8080/ tests/pictures/00001-number-75845.webp 75845 target/artifacts
# Installs chromium with apt when /usr/bin/chromium is missing (needs root, as in CI), and
# playwright-core with npm into target/browser-test (needs node >= 18). Exits non-zero, with a
# line saying why, when it cannot run or a check fails.
set -euo pipefail
if [ $# -ne 4 ]; then
    echo "usage: $0 URL UPLOAD_IMAGE EXPECTED_NUMBER SCREENSHOT_DIR" >&2
    exit 2
fi
cd "$(dirname "$0")/.."
PLAYWRIGHT_VERSION=1.65.1

if [ ! -x /usr/bin/chromium ]; then
    if ! command -v apt-get > /dev/null; then
        echo "error: /usr/bin/chromium is missing and there is no apt-get to install it; install Chromium, or set MNIST_SKIP_BROWSER=1 to skip this test" >&2
        exit 1
    fi
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
    echo "installing chromium with apt-get" >&2
    if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium > /dev/null; }; then
        echo "error: cannot install chromium with apt-get (not root, or no network); install it, or set MNIST_SKIP_BROWSER=1 to skip this test" >&2
        exit 1
    fi
fi
if ! command -v node > /dev/null || ! command -v npm > /dev/null; then
    echo "error: node and npm are needed to drive the browser (Debian: apt-get install nodejs npm); or set MNIST_SKIP_BROWSER=1 to skip this test" >&2
    exit 1
fi

DIR=target/browser-test
if [ ! -f "$DIR/node_modules/playwright-core/package.json" ] \
    || ! grep -q "\"version\": \"$PLAYWRIGHT_VERSION\"" "$DIR/node_modules/playwright-core/package.json"; then
    mkdir -p "$DIR"
    echo "installing playwright-core $PLAYWRIGHT_VERSION into $DIR" >&2
    npm install --silent --no-audit --no-fund --prefix "$DIR" "playwright-core@$PLAYWRIGHT_VERSION" >&2
fi
mkdir -p "$4"
NODE_PATH="$PWD/$DIR/node_modules" node scripts/browser-test.js "$1" "$2" "$3" "$4"
