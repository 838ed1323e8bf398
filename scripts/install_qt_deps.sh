#!/usr/bin/env bash
# Install the system libraries that PySide6 (Qt 6) needs on a bare Debian/Ubuntu machine, for the
# GUI and its tests on the offscreen platform (QT_QPA_PLATFORM=offscreen).
#
# Found with `ldd` on PySide6's Qt libraries and the offscreen platform plugin
# (Qt/lib/libQt6{Core,Gui,Widgets}.so.6, Qt/plugins/platforms/libqoffscreen.so): they link
#   libGL.so.1 libEGL.so.1          -> libgl1 libegl1
#   libfontconfig.so.1 libfreetype  -> libfontconfig1 libfreetype6 (+ a font: fonts-dejavu-core)
#   libxkbcommon.so.0               -> libxkbcommon0
#   libdbus-1.so.3                  -> libdbus-1-3
#   libglib-2.0.so.0 libgthread     -> libglib2.0-0 (libglib2.0-0t64 on Debian 13 / Ubuntu 24.04)
#   libX11.so.6 libxcb.so.1         -> libx11-6 libxcb1
# Everything else they link (libz, libzstd, libpng16, libexpat...) comes with those packages.
#
#   scripts/install_qt_deps.sh            offscreen / CI set
#   scripts/install_qt_deps.sh --desktop  also the X11 (xcb) platform plugin's libraries, for a
#                                         station with a screen
#
# Already-installed packages are skipped (no apt-get update when nothing is missing).
# QT_DEPS_DRY_RUN=1 only shows what apt-get would do (apt-get -s, no update).
set -euo pipefail

PACKAGES=(libgl1 libegl1 libfontconfig1 libfreetype6 fonts-dejavu-core libxkbcommon0 libdbus-1-3
          "libglib2.0-0t64|libglib2.0-0" libx11-6 libxcb1)
DESKTOP=(libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-randr0 libxcb-render-util0
         libxcb-image0 libxcb-xfixes0 libxcb-sync1 libxcb-shm0 libxcb-xkb1 libxcb-util1 libx11-xcb1
         libxkbcommon-x11-0)
if [[ "${1:-}" == "--desktop" ]]; then PACKAGES+=("${DESKTOP[@]}"); fi

if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-query >/dev/null 2>&1; then
    echo "install_qt_deps: no apt-get here (not Debian/Ubuntu); install the equivalents of: ${PACKAGES[*]}" >&2
    exit 0
fi

SUDO=()
if [[ "$(id -u)" != "0" ]]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=(sudo); else
        echo "install_qt_deps: run as root (or install sudo)" >&2; exit 1; fi
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

missing=()
for spec in "${PACKAGES[@]}"; do
    IFS='|' read -r -a alternatives <<< "$spec"
    ok=0
    for p in "${alternatives[@]}"; do if installed "$p"; then ok=1; break; fi; done
    if [[ $ok == 0 ]]; then missing+=("$spec"); fi
done
if [[ ${#missing[@]} == 0 ]]; then
    echo "install_qt_deps: all Qt system libraries present"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
DRY=()
if [[ "${QT_DEPS_DRY_RUN:-0}" == "1" ]]; then DRY=(-s); SUDO=(); else "${SUDO[@]}" apt-get update -qq; fi
to_install=()
for spec in "${missing[@]}"; do
    IFS='|' read -r -a alternatives <<< "$spec"
    chosen="${alternatives[-1]}"
    for p in "${alternatives[@]}"; do
        if apt-cache show "$p" >/dev/null 2>&1; then chosen="$p"; break; fi
    done
    to_install+=("$chosen")
done
echo "install_qt_deps: installing ${to_install[*]}"
"${SUDO[@]}" apt-get install "${DRY[@]}" -y --no-install-recommends "${to_install[@]}"
