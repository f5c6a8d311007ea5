#!/usr/bin/env bash
# Installs every Debian package Interaction needs. Idempotent: packages that
# are already installed are left alone, and apt-get runs only when one is missing.
set -euo pipefail
# libprotobuf-dev: google/protobuf/*.proto, the well-known types interaction_generate() provides;
# python3-protobuf: tests/install/hello_check.py decodes a Hello with the installed interaction.proto.
pkgs=(build-essential cmake pkg-config libprotobuf-c-dev protobuf-c-compiler protobuf-compiler
      libprotoc-dev libprotobuf-dev libevent-dev libcriterion-dev nanopb libnanopb-dev libssl-dev openssl valgrind
      clang-format clang libclang-rt-14-dev iproute2 python3-prometheus-client python3-protobuf)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#pkgs[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
