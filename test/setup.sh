#!/usr/bin/env bash
# Before the tests: Debian packages some tests run against, installed here when missing and
# this machine can (root with apt-get): mosquitto (the MQTT tests run edgeward against a
# mosquitto of their own) and chromium (the simulator's report is opened in a real browser).
set -u
missing=()
if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then missing+=(mosquitto); fi
if ! command -v chromium >/dev/null && [ ! -x /usr/bin/chromium ]; then missing+=(chromium); fi
# nftables: the NAT tests put routers with NAT between namespaces (test/support/netns.ts)
if ! command -v nft >/dev/null && [ ! -x /usr/sbin/nft ]; then missing+=(nftables); fi
# iproute2: the LAN tests make network namespaces with `ip netns` (test/support/lan.ts)
if ! command -v ip >/dev/null && [ ! -x /usr/sbin/ip ] && [ ! -x /sbin/ip ]; then missing+=(iproute2); fi
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "[test setup] installing ${missing[*]} (Debian packages) for the tests" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null) || {
    echo "[test setup] could not install ${missing[*]}; the tests that need them will fail" >&2
  }
else
  echo "[test setup] ${missing[*]} missing and cannot be installed here (needs root and apt-get)" >&2
fi
exit 0
