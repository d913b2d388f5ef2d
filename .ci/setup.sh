#!/usr/bin/env bash
# Installs what blockkv needs to build and test on Debian 12, if missing. Idempotent and quick when
# everything is there.
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config librocksdb-dev libzstd-dev libxxhash-dev
      libboost-test-dev libcli11-dev nlohmann-json3-dev libopenblas-dev libpcre2-dev libicu-dev
      python3 python3-jinja2 zstd libcpp-httplib-dev pybind11-dev python3-dev python3-numpy python3-pytest)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
