#!/usr/bin/env bash
# Everything `npm start` and `npm test` need, installed on first use and
# skipped when already there: the pinned Node.js (when the machine's is of
# another line), npm dependencies, the Temporal CLI, the time-skipping test
# server, the Kafka broker, and the generated Prisma client.
set -euo pipefail
cd "$(dirname "$0")/.."

# The machine's Node only bootstraps: from here on everything (npm ci included,
# so native modules match) runs on the pinned Node of ORDERFLOW_NODE_LINE (24).
if ! command -v node >/dev/null; then
  echo "[setup] Node.js (any version from 18) is needed to start setup. Install it from nodejs.org or your package manager." >&2
  exit 1
fi
node_bin=$(node scripts/provision-node.mjs)
export PATH="$node_bin:$PATH"

# npm dependencies: reinstalled when package-lock.json or the Node ABI changed.
lock_hash=$(node -e 'process.stdout.write(require("crypto").createHash("sha256").update(require("fs").readFileSync("package-lock.json")).digest("hex") + " node-abi-" + process.versions.modules)')
if [ ! -f node_modules/.orderflow-lock ] || [ "$(cat node_modules/.orderflow-lock)" != "$lock_hash" ]; then
  echo "[setup] installing npm dependencies (npm ci, Node $(node --version))" >&2
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_hash" > node_modules/.orderflow-lock
fi

exec node --import tsx scripts/provision.ts "$@"
