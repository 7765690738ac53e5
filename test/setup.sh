#!/usr/bin/env bash
# Before the tests: the MQTT tests run edgeward against a mosquitto of their own, from
# Debian's packages. Installed here when missing and this machine can (root with apt-get).
set -u
if command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "[test setup] installing mosquitto (Debian package) for the MQTT tests" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null) || {
    echo "[test setup] could not install mosquitto; the mosquitto tests will fail" >&2
  }
else
  echo "[test setup] mosquitto is missing and cannot be installed here (needs root and apt-get)" >&2
fi
exit 0
