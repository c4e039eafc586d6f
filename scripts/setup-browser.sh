#!/usr/bin/env bash
# Headless Chromium and its WebDriver for the review-report browser test (tests/test_review.py),
# from Debian's packages (Selenium is told to use /usr/bin/chromedriver, so it downloads nothing).
# Idempotent: does nothing when both are already installed. Needs root or sudo (CI runs as root).
set -euo pipefail

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "setup-browser: run as root, or install chromium and chromium-driver" >&2; exit 1; }
  sudo="sudo"
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver
