#!/usr/bin/env bash
# Install Debian's chromium, which the audit report's browser test (tests/test_audit_report_browser.py)
# runs headless on the report's index.html (it fails under CI=true when chromium is missing, and skips
# otherwise). Nothing is done when it is already there; apt-get update only when the package is not known yet.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    echo "install_chromium: chromium present"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_chromium: no apt-get here (not Debian/Ubuntu); install chromium (https://www.chromium.org/getting-involved/download-chromium/)" >&2
    exit 0
fi
SUDO=()
if [[ "$(id -u)" != "0" ]]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=(sudo); else
        echo "install_chromium: run as root (or install sudo)" >&2; exit 1; fi
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-cache show chromium >/dev/null 2>&1; then "${SUDO[@]}" apt-get update -qq; fi
echo "install_chromium: installing chromium"
"${SUDO[@]}" apt-get install -y --no-install-recommends chromium
