#!/usr/bin/env bash
# Install Debian's mosquitto MQTT broker, which the MQTT tests start on a free local port
# (tests/mqtt_broker.py; they fail under CI=true when it is missing, and skip otherwise).
# Nothing is done when it is already there; apt-get update only when the package is not known yet.
# The package's own service is not needed: the tests run their own broker processes.
set -euo pipefail
if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then
    echo "install_mqtt_broker: mosquitto present"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_mqtt_broker: no apt-get here (not Debian/Ubuntu); install mosquitto (https://mosquitto.org/download/)" >&2
    exit 0
fi
SUDO=()
if [[ "$(id -u)" != "0" ]]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=(sudo); else
        echo "install_mqtt_broker: run as root (or install sudo)" >&2; exit 1; fi
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-cache show mosquitto >/dev/null 2>&1; then "${SUDO[@]}" apt-get update -qq; fi
echo "install_mqtt_broker: installing mosquitto"
"${SUDO[@]}" apt-get install -y --no-install-recommends mosquitto
