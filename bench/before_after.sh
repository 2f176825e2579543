#!/usr/bin/env bash
# The benchmarks a restructuring must hold steady, on two trees in one run: a git revision (before)
# and another (after; this working tree if not given), alternating so both see the same machine.
#
#   sudo bench/before_after.sh REV [OUTDIR] [ROUNDS] [AFTER_REV]
#
# Runs, per round and tree: bench/create_cluster.py --sizes 2,16,32 (real nodes: root),
# bench/control_plane.py --sizes 1000 --clusters 1000 (1,000 clusters of 10 nodes, SQLite), and
# bench/api_load.py (1,000 clusters). Each output goes to OUTDIR/<tree>-<bench>-<round>.txt.
# Both trees run with this checkout's .venv; PYTHONPATH puts the tree's own src/ first.
set -euo pipefail
rev=${1:?usage: bench/before_after.sh REV [OUTDIR] [ROUNDS]}
out=${2:-$(mktemp -d)}
rounds=${3:-1}
after_rev=${4:-}
root=$(cd "$(dirname "$0")/.." && pwd)
py=$root/.venv/bin/python
before=$(mktemp -d)
after=$root
git -C "$root" worktree add -q --detach "$before" "$rev"
cleanup() {
    git -C "$root" worktree remove --force "$before"
    [ "$after" = "$root" ] || git -C "$root" worktree remove --force "$after"
}
trap cleanup EXIT
if [ -n "$after_rev" ]; then
    after=$(mktemp -d)
    git -C "$root" worktree add -q --detach "$after" "$after_rev"
fi
mkdir -p "$out"

run() {  # tree-label tree bench-label args...
    local label=$1 tree=$2 name=$3
    shift 3
    echo "== $label $name: $*" >&2
    (cd "$tree" && PYTHONPATH="$tree/src" "$py" "$@") >"$out/$label-$name.txt" 2>&1 \
        || echo "   failed: see $out/$label-$name.txt" >&2
}

for r in $(seq 1 "$rounds"); do
    for side in before after; do
        tree=$after
        [ "$side" = before ] && tree=$before
        run "$side" "$tree" "create-$r" bench/create_cluster.py --sizes 2,16,32
        run "$side" "$tree" "control-$r" bench/control_plane.py --sizes 1000 --clusters 1000
        run "$side" "$tree" "api-$r" bench/api_load.py --clusters 1000 --seconds 10 --rounds 2
    done
done
echo "results in $out"
