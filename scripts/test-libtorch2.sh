#!/usr/bin/env bash
# Builds vigil with warnings as errors against libtorch 2.x and runs its whole test suite, inside a
# Debian 13 (trixie) root made with mmdebstrap; nothing is installed onto this machine but
# mmdebstrap itself. Needs root (chroot, mounts):
#
#   sudo bash scripts/test-libtorch2.sh
#
# Everything lives under /var/cache/vigil (VIGIL_CACHE=...): trixie-root/ (kept between runs;
# rebuilt when a run was interrupted while making it, updated when the package list below
# changes), build-libtorch2/ (the build folder; the checkout's own build/ is not touched), ccache/
# and the last logs. The checkout is mounted read-only into the root. The tests run in their own
# network namespace, so those that make network namespaces or veth pairs change nothing here.
# JOBS=N sets the build and ctest parallelism (default: nproc); CTEST_ARGS=... passes arguments
# to ctest (e.g. CTEST_ARGS="-R Conformance"); MIRROR=... the Debian mirror. The conformance cases
# must be in ../shared beside the checkout, as for scripts/test.sh.
# Exit status: 0 when the build and every test passed.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "test-libtorch2: needs root (it makes a chroot and mounts into it): sudo bash $0" >&2
  exit 2
fi
src=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -d "$src/../shared/conformance" ]; then
  echo "test-libtorch2: $src/../shared/conformance is missing: the tests read the conformance" \
    "cases from ../shared beside the checkout, as scripts/test.sh's do" >&2
  exit 2
fi
cache=${VIGIL_CACHE:-/var/cache/vigil}
rootfs=$cache/trixie-root
stamp=$cache/trixie-root.stamp
mirror=${MIRROR:-http://deb.debian.org/debian}
jobs=${JOBS:-$(nproc)}

# scripts/setup.sh's list as trixie has it (without clang and clang-format, which no test uses),
# and what the tests call: ip (iproute2), file, ccache for the builds.
pkgs=(build-essential cmake ninja-build pkg-config ccache
  libtorch-dev libopenblas0-pthread libgloo-dev
  nlohmann-json3-dev libcli11-dev libfmt-dev libzstd-dev libxxhash-dev zlib1g-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  dataset-fashion-mnist fortunes python3-torch python3-optuna
  doxygen jq dpkg-dev iproute2 file)
wanted="trixie ${pkgs[*]}"

# The mounts live in a mount namespace of their own: whatever happens to this script, none of
# them outlives it or shows up on the machine.
if [ -z "${VIGIL_LT2_NAMESPACE:-}" ]; then
  export VIGIL_LT2_NAMESPACE=1
  exec unshare --mount --propagation private -- bash "$0" "$@"
fi

mounted=()
cleanup() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount -R "${mounted[i]}" 2>/dev/null || umount -R -l "${mounted[i]}" 2>/dev/null || true
  done
  mounted=()
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

mount_into() {  # mount_into TARGET MOUNT-ARGS...: mounts, and remembers to unmount
  local target=$1
  shift
  mkdir -p "$target"
  mount "$@" "$target"
  mounted+=("$target")
}

no_mounts_under() {
  if grep -q " $1[/ ]" /proc/mounts; then
    echo "test-libtorch2: something is still mounted under $1; unmount it first" >&2
    exit 1
  fi
}

make_root() {
  command -v mmdebstrap >/dev/null || {
    echo "test-libtorch2: installing mmdebstrap (the only change to this machine)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap \
      >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null; }
  }
  echo "test-libtorch2: making the Debian 13 root $rootfs (once; takes a few minutes)" >&2
  no_mounts_under "$rootfs"
  rm -rf --one-file-system "$rootfs" "$stamp"
  mkdir -p "$cache"
  mmdebstrap --mode=root --variant=apt --components=main \
    --aptopt='APT::Install-Recommends "false"' \
    --include="$(IFS=,; echo "${pkgs[*]}")" trixie "$rootfs" "$mirror" \
    >"$cache/mmdebstrap.log" 2>&1 || {
    tail -n 30 "$cache/mmdebstrap.log" >&2
    echo "test-libtorch2: mmdebstrap failed (log: $cache/mmdebstrap.log)" >&2
    exit 1
  }
  echo "$wanted" >"$stamp"
}

update_root() {
  echo "test-libtorch2: the package list changed; installing it into $rootfs" >&2
  mount_into "$rootfs/proc" -t proc proc
  mount_into "$rootfs/dev" --rbind /dev
  cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
  chroot "$rootfs" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive chroot "$rootfs" apt-get install -y -qq \
    --no-install-recommends "${pkgs[@]}" >"$cache/apt.log" 2>&1 || {
    tail -n 30 "$cache/apt.log" >&2
    exit 1
  }
  cleanup
  echo "$wanted" >"$stamp"
}

# The stamp is written last: a root without it is half-made and is made again.
if [ ! -f "$stamp" ] || [ ! -d "$rootfs" ]; then
  make_root
elif [ "$(cat "$stamp")" != "$wanted" ]; then
  update_root
fi

mkdir -p "$cache/build-libtorch2" "$cache/ccache"
no_mounts_under "$cache/tmp"
rm -rf --one-file-system "$cache/tmp"
mkdir -p "$cache/tmp"
chmod 1777 "$cache/tmp"
# The root is a mount point of its own, as `ip netns` (which some tests run) expects of /.
mount_into "$rootfs" --bind "$rootfs"
mount_into "$rootfs/proc" -t proc proc
mount_into "$rootfs/dev" --rbind /dev
mount_into "$rootfs/sys" -t sysfs -o ro sysfs
mount_into "$rootfs/tmp" --bind "$cache/tmp"
mount_into "$rootfs/build" --bind "$cache/build-libtorch2"
mount_into "$rootfs/ccache" --bind "$cache/ccache"
mount_into "$rootfs/src/vigil" --bind "$src"
mount -o remount,bind,ro "$rootfs/src/vigil"
# The conformance cases the tests read from ../shared beside the checkout.
mount_into "$rootfs/src/shared" --bind "$src/../shared"
mount -o remount,bind,ro "$rootfs/src/shared"

version=$(chroot "$rootfs" dpkg-query -W -f='${Version}' libtorch-dev)
echo "test-libtorch2: libtorch-dev $version (Debian 13), $(chroot "$rootfs" c++ --version | head -n 1)"

start=$(date +%s)
status=0
unshare --net -- chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
  LANG=C.UTF-8 TMPDIR=/tmp CCACHE_DIR=/ccache JOBS="$jobs" CTEST_ARGS="${CTEST_ARGS:-}" bash -c '
  set -euo pipefail
  ip link set lo up
  cmake -S /src/vigil -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DVIGIL_WERROR=ON \
    -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache \
    >/build/configure.log 2>&1 || { tail -n 30 /build/configure.log; exit 1; }
  echo "test-libtorch2: building (log: build-libtorch2/build.log)"
  # -k 0: every failing file is reported, not just the first one.
  if ! cmake --build /build -j"$JOBS" -- -k 0 >/build/build.log 2>&1; then
    grep -E -A3 "error:|warning:" /build/build.log | head -n 200
    echo "test-libtorch2: the build failed"
    exit 1
  fi
  echo "test-libtorch2: running the test suite (log: build-libtorch2/ctest.log)"
  cd /build
  rc=0
  ctest --output-on-failure -j"$JOBS" ${CTEST_ARGS} >/build/ctest.log 2>&1 || rc=$?
  sed -n "/tests passed/,\$p" /build/ctest.log
  exit "$rc"
' || status=$?

echo "test-libtorch2: $(($(date +%s) - start)) s for the build and the tests; exit status $status"
exit "$status"
