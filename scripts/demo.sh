#!/usr/bin/env bash
# floe's main job on the embedded default: a real 3-node Swarm cluster on this machine,
# driven by the stock docker client. `make demo` runs this after installing everything.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export FLOE_HOME="${FLOE_HOME:-$HOME/.local/share/floe}"
DOCKER=/usr/bin/docker            # the Debian client, same version as the nodes' dockerd
CLUSTER=demo
CONFIG_DIR="$FLOE_HOME/demo-config"
PIDFILE="$FLOE_HOME/server.pid"

if [ "$(id -u)" != 0 ]; then echo "error: the demo needs root (floe creates namespaces, bridges and mounts)" >&2; exit 1; fi

if [ "${1:-}" = "--clean" ]; then
  floe cluster delete "$CLUSTER" --wait 2>/dev/null || true
  if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then kill "$(cat "$PIDFILE")"; fi
  rm -f "$PIDFILE"
  floe cleanup --all
  exit 0
fi

mkdir -p "$FLOE_HOME"
if ! curl -fsS -o /dev/null http://127.0.0.1:9511/ 2>/dev/null; then
  echo "==> starting floe server (log: $FLOE_HOME/server.log)"
  nohup floe server >"$FLOE_HOME/server.log" 2>&1 &
  echo $! >"$PIDFILE"
  for _ in $(seq 1 100); do curl -fsS -o /dev/null http://127.0.0.1:9511/ 2>/dev/null && break; sleep 0.2; done
fi

echo "==> cluster template"
floe template show swarm >/dev/null 2>&1 || floe template create swarm --coe swarm --label purpose=demo
echo "==> creating a 3-node Swarm cluster (1 manager, 2 workers)"
floe cluster show "$CLUSTER" >/dev/null 2>&1 || floe cluster create "$CLUSTER" --template swarm --master-count 1 --node-count 2 --wait
floe cluster nodes "$CLUSTER"

echo "==> credentials for the native docker client"
eval "$(floe cluster config "$CLUSTER" --dir "$CONFIG_DIR" --force)"
$DOCKER node ls

echo "==> deploying examples/pinger-stack.yml"
PINGER_TARGETS="$(floe cluster show "$CLUSTER" -f json | python3 -c 'import json,sys; c=json.load(sys.stdin); print(" ".join(c["master_addresses"]+c["node_addresses"]))')"
export PINGER_TARGETS
$DOCKER stack deploy -c examples/pinger-stack.yml pinger
for _ in $(seq 1 100); do
  running=$($DOCKER service ps pinger_pinger --filter desired-state=running --format '{{.CurrentState}}' | grep -c '^Running' || true)
  [ "$running" -ge 4 ] && break; sleep 0.3
done
$DOCKER service ps pinger_pinger --format 'table {{.Name}}\t{{.Node}}\t{{.CurrentState}}'
sleep 6
echo "==> docker service logs pinger_pinger (last lines)"
$DOCKER service logs --raw pinger_pinger 2>/dev/null | tail -8

cat <<MSG

The cluster is yours. To use it from this shell:
  eval "\$(floe cluster config $CLUSTER --dir $CONFIG_DIR --force)"
  $DOCKER node ls; $DOCKER service ls
(\`--endpoint-mode dnsrr\` and \`--publish mode=host\`: this kernel has no IPVS for virtual IPs.)
Scale it:    floe cluster resize $CLUSTER --node-count 4 --wait
Watch it:    floe cluster events $CLUSTER --follow;  floe cluster logs $CLUSTER --tail 20
             the dashboard: http://127.0.0.1:9511/dashboard/ (user admin, password in $FLOE_HOME/admin-password)
             floe monitoring up   (Prometheus and Alertmanager for every node; docs/monitoring.md)
Clean up:    make demo-clean   (deletes the cluster, stops the server, removes everything floe made)
MSG
