#!/usr/bin/env bash
# The drawing page in a real browser: headless Chromium driven by Playwright (playwright-core,
# the library without its own browsers). Run by tests/serve_browser.rs (ignored by a plain
# `cargo test`; scripts/verify-all.sh runs it), which starts `mnist serve` first; by hand:
#   mnist serve --addr 127.0.0.1:8080 &
#   scripts/browser-test.sh http://127.0.0.1:8080/ tests/pictures/00001-number-75845.webp 75845 target/artifacts
# It installs nothing: a missing piece is an error saying how to install it.
#   scripts/browser-test.sh --setup   installs them: playwright-core with npm into
#                                     target/browser-test, and Debian's chromium with apt-get
#                                     when it is missing and this runs as root (CI). Never sudo.
set -euo pipefail
cd "$(dirname "$0")/.."
PLAYWRIGHT_VERSION=1.65.1
DIR=target/browser-test

find_chromium() {
    local name
    for name in chromium chromium-browser google-chrome-stable google-chrome; do
        if command -v "$name" > /dev/null; then command -v "$name"; return 0; fi
    done
    return 1
}
have_playwright() {
    grep -qs "\"version\": \"$PLAYWRIGHT_VERSION\"" "$DIR/node_modules/playwright-core/package.json"
}
need_node() {
    if ! command -v node > /dev/null || ! command -v npm > /dev/null; then
        echo "error: browser test: node (18 or later) and npm are needed to drive the browser (Debian: apt-get install nodejs npm)" >&2
        exit 1
    fi
}

if [ "${1:-}" = --setup ]; then
    need_node
    if ! find_chromium > /dev/null; then
        if [ "$(id -u)" -ne 0 ] || ! command -v apt-get > /dev/null; then
            echo "error: browser test: no Chromium on PATH, and installing one needs root and apt-get; install Chromium (Debian: apt-get install chromium)" >&2
            exit 1
        fi
        echo "installing chromium with apt-get" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium > /dev/null
    fi
    if ! have_playwright; then
        echo "installing playwright-core $PLAYWRIGHT_VERSION into $DIR" >&2
        mkdir -p "$DIR"
        npm install --silent --no-audit --no-fund --prefix "$DIR" "playwright-core@$PLAYWRIGHT_VERSION" >&2
    fi
    exit 0
fi

if [ $# -ne 4 ]; then
    echo "usage: $0 URL UPLOAD_IMAGE EXPECTED_NUMBER SCREENSHOT_DIR   (or: $0 --setup)" >&2
    exit 2
fi
need_node
if ! chromium=$(find_chromium); then
    echo "error: browser test: no Chromium on PATH (chromium, chromium-browser or google-chrome); install it (Debian: apt-get install chromium)" >&2
    exit 1
fi
if ! have_playwright; then
    echo "error: browser test: playwright-core $PLAYWRIGHT_VERSION is not in $DIR; install it with: npm install --prefix $DIR playwright-core@$PLAYWRIGHT_VERSION" >&2
    exit 1
fi
mkdir -p "$4"
NODE_PATH="$PWD/$DIR/node_modules" node scripts/browser-test.js "$chromium" "$1" "$2" "$3" "$4"
