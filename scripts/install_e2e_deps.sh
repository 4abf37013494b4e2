#!/usr/bin/env bash
# Installs the real remote-write senders the end-to-end tests run: Prometheus (Debian package
# `prometheus`, 2.42 on bookworm), vmagent (Debian package `victoria-metrics`) and the InfluxDB the
# influxdb engine's tests write to (Debian package `influxdb`, 1.6.7).
# Idempotent: when the binaries are already there it installs nothing and only prints versions.
# Needs root (or sudo) only when something is missing.
#
# Usage: install_e2e_deps.sh [prometheus] [vmagent] [influxdb]   (default: all three; `make run
# STORAGE_ENGINE=influxdb` asks for influxdb alone)
set -euo pipefail

wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(prometheus vmagent influxdb)
for name in "${wanted[@]}"; do
    case "$name" in
        prometheus|vmagent|influxdb) ;;
        *) echo "install_e2e_deps: unknown '$name' (choose from prometheus, vmagent, influxdb)" >&2; exit 2 ;;
    esac
done
want() {
    local name
    for name in "${wanted[@]}"; do [ "$name" = "$1" ] && return 0; done
    return 1
}

PROMETHEUS_BIN=${PROMETHEUS_BIN:-/usr/bin/prometheus}
VMAGENT_BIN=${VMAGENT_BIN:-/usr/bin/vmagent}
INFLUXD_BIN=${INFLUXD_BIN:-/usr/bin/influxd}

missing=()
bins=()
if want prometheus; then bins+=("$PROMETHEUS_BIN"); [ -x "$PROMETHEUS_BIN" ] || missing+=(prometheus); fi
if want vmagent; then bins+=("$VMAGENT_BIN"); [ -x "$VMAGENT_BIN" ] || missing+=(victoria-metrics); fi
if want influxdb; then bins+=("$INFLUXD_BIN"); [ -x "$INFLUXD_BIN" ] || missing+=(influxdb); fi

if [ ${#missing[@]} -gt 0 ]; then
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo)
        else
            echo "install_e2e_deps: need root to install: ${missing[*]}" >&2
            exit 1
        fi
    fi
    echo "install_e2e_deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    # --no-install-recommends keeps out the exporters and web assets the tests do not use;
    # policy-rc.d keeps the packages' own services from starting (the tests run the binaries).
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod +x "$policy"
        created_policy=1
    fi
    status=0
    log=$(mktemp)
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$log" 2>&1 || status=$?
    if [ "$created_policy" -eq 1 ]; then
        "${sudo[@]}" rm -f "$policy"
    fi
    if [ "$status" -ne 0 ]; then
        cat "$log" >&2
        rm -f "$log"
        echo "install_e2e_deps: apt-get install ${missing[*]} failed ($status)" >&2
        exit "$status"
    fi
    rm -f "$log"
fi

for bin in "${bins[@]}"; do
    if [ ! -x "$bin" ]; then
        echo "install_e2e_deps: $bin is still missing after install" >&2
        exit 1
    fi
done

# Debian's vmagent build prints an empty -version: fall back to the package version.
version() {
    local out
    out=$("$1" "$2" 2>&1 | head -n 1 || true)
    if [ -z "$out" ] && command -v dpkg-query >/dev/null 2>&1; then
        out="package $3 $(dpkg-query -W -f '${Version}' "$3" 2>/dev/null || echo unknown)"
    fi
    echo "$out"
}
if want prometheus; then echo "prometheus: $(version "$PROMETHEUS_BIN" --version prometheus)"; fi
if want vmagent; then echo "vmagent: $(version "$VMAGENT_BIN" -version victoria-metrics)"; fi
if want influxdb; then echo "influxd: $(version "$INFLUXD_BIN" version influxdb)"; fi
