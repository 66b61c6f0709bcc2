#!/usr/bin/env bash
# Installs what vigil needs from Debian's archive; quiet and quick when everything is present.
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config git
      libtorch-dev libopenblas0-pthread libgloo-dev
      nlohmann-json3-dev libcli11-dev libfmt-dev libzstd-dev libxxhash-dev zlib1g-dev
      libgtest-dev libgmock-dev googletest libbenchmark-dev
      clang libclang-rt-14-dev clang-format
      dataset-fashion-mnist fortunes python3-torch python3-optuna
      doxygen jq dpkg-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
