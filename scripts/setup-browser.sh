#!/usr/bin/env bash
# Headless Chromium and its WebDriver for the review-report browser test (tests/test_review.py),
# from Debian's packages (Selenium is told to use /usr/bin/chromedriver, so it downloads nothing).
# Idempotent: does nothing when both are already installed. Needs root (CI runs as root).
set -euo pipefail

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
