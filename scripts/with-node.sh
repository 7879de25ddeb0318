#!/usr/bin/env bash
# Runs a command with orderflow's Node.js first on PATH (scripts/provision-node.mjs:
# the pinned Node 24 unless the machine's is a Node 24 LTS; ORDERFLOW_NODE_LINE=22
# for the maintenance line), so the command and every process it spawns
# (`node`, `npx`, process.execPath) run on it.
#
#   bash scripts/with-node.sh vitest run
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
node_bin=$(node "$root/scripts/provision-node.mjs")
export PATH="$node_bin:$PATH"
exec "$@"
