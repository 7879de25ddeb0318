#!/usr/bin/env bash
# Everything `npm start` and `npm test` need, installed on first use and
# skipped when already there: npm dependencies, the Temporal CLI, the
# time-skipping test server, the Kafka broker, and the generated Prisma client.
set -euo pipefail
cd "$(dirname "$0")/.."

node_major=$(node -p 'process.versions.node.split(".").map(Number).reduce((a, v, i) => a + v * [1e6, 1e3, 1][i], 0)')
if [ "$node_major" -lt 20003000 ]; then
  echo "[setup] Node.js >= 20.3 is required (found $(node --version)). Install it from nodejs.org or your package manager." >&2
  exit 1
fi

# npm dependencies: reinstalled only when package-lock.json changed.
lock_hash=$(node -e 'process.stdout.write(require("crypto").createHash("sha256").update(require("fs").readFileSync("package-lock.json")).digest("hex"))')
if [ ! -f node_modules/.orderflow-lock ] || [ "$(cat node_modules/.orderflow-lock)" != "$lock_hash" ]; then
  echo "[setup] installing npm dependencies (npm ci)" >&2
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_hash" > node_modules/.orderflow-lock
fi

exec node --import tsx scripts/provision.ts "$@"
