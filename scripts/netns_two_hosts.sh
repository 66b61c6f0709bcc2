#!/usr/bin/env bash
# Runs `vigil train` data-parallel across two "hosts": two network namespaces joined by a veth
# pair (10.77.0.1 and 10.77.0.2), one rank in each, rendezvous on host 0 -- what two machines on
# one network would do. Needs root (ip netns) and iproute2; the namespaces are removed on exit.
#
#   bash scripts/netns_two_hosts.sh [extra vigil train flags...]
#   VIGIL=build/vigil RUN_DIR=/tmp/run bash scripts/netns_two_hosts.sh --epochs 2 --limit-train 2000
#
# Exit status: 0 when both hosts finished their training, else the first non-zero status.
set -euo pipefail

VIGIL=${VIGIL:-$(dirname "$0")/../build/vigil}
RUN_DIR=${RUN_DIR:-$(mktemp -d)/run}
PORT=${PORT:-29511}
TIMEOUT=${TIMEOUT:-60}
id=$$
ns0=vigil-h0-$id
ns1=vigil-h1-$id
if0=vg0-$id   # interface names: at most 15 characters
if1=vg1-$id

[ "$(id -u)" -eq 0 ] || { echo "netns_two_hosts: needs root (ip netns)" >&2; exit 2; }
command -v ip >/dev/null || { echo "netns_two_hosts: needs iproute2" >&2; exit 2; }
mkdir -p "$(dirname "$RUN_DIR")"
[ -x "$VIGIL" ] || { echo "netns_two_hosts: no vigil binary at $VIGIL (set VIGIL=...)" >&2; exit 2; }

cleanup() {
  ip netns del "$ns0" 2>/dev/null || true
  ip netns del "$ns1" 2>/dev/null || true
}
trap cleanup EXIT

ip netns add "$ns0"
ip netns add "$ns1"
ip link add "$if0" type veth peer name "$if1"
ip link set "$if0" netns "$ns0"
ip link set "$if1" netns "$ns1"
ip -n "$ns0" addr add 10.77.0.1/24 dev "$if0"
ip -n "$ns1" addr add 10.77.0.2/24 dev "$if1"
for ns in "$ns0" "$ns1"; do ip -n "$ns" link set lo up; done
ip -n "$ns0" link set "$if0" up
ip -n "$ns1" link set "$if1" up

# Both "hosts" see this machine's file system: the run directory is shared storage, as a real
# multi-host run needs for resuming (rank 0 writes it, the others read its checkpoints).
common=(train --run-dir "$RUN_DIR" --nnodes 2 --nproc 1 --master-addr 10.77.0.1
        --master-port "$PORT" --dist-timeout "$TIMEOUT")
echo "netns_two_hosts: host 0 = $ns0 (10.77.0.1), host 1 = $ns1 (10.77.0.2), run dir $RUN_DIR"
ip netns exec "$ns0" "$VIGIL" "${common[@]}" --node-rank 0 --dist-interface "$if0" "$@" &
p0=$!
ip netns exec "$ns1" "$VIGIL" "${common[@]}" --node-rank 1 --dist-interface "$if1" "$@" \
  > "$RUN_DIR.host1.log" 2>&1 &
p1=$!
s0=0; s1=0
wait "$p0" || s0=$?
wait "$p1" || s1=$?
echo "netns_two_hosts: host 0 exited $s0, host 1 exited $s1 (host 1's output: $RUN_DIR.host1.log)"
[ "$s0" -ne 0 ] && exit "$s0"
exit "$s1"
