# orderflow production image: compiled JavaScript on Node 24 LTS, production
# dependencies only, no tsx, TypeScript or webpack run at start-up. One image,
# every process: docker-compose.yml picks the process per service with
# `command:` (`node dist/<entry>.js`); the default is the API.
#
# The build stage runs `npm run build` (scripts/build.ts), the script that
# test/e2e/compiled.test.ts runs before it starts the API and the workers from
# its output, with production dependencies only, on Node 24, against the real
# stack (the build machines have no Docker engine).
#
# Pinned to the release that setup provisions (scripts/provision-node.mjs);
# change both together.
ARG NODE_IMAGE=node:24.22.3-bookworm-slim

# ---------------------------------------------------------------- build
# All dependencies: the Prisma CLI generates the client, tsc compiles, the
# Temporal bundler (webpack) bundles the workflow code once, here.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
# src/generated is git- and docker-ignored: generated here from prisma/schema.prisma.
RUN npm run db:generate
# dist/: compiled src (with the Prisma client), scripts/migrate.js, prisma/migrations,
# and the workflow bundles the orders worker loads with `workflowBundle`.
RUN npm run build

# ---------------------------------------------------------------- production dependencies
# --omit=optional too: the Prisma CLI and TypeScript are optional peers of
# @prisma/client, which npm otherwise installs (with ~120 packages of theirs);
# the only other optionals are @swc/core's platform binaries, which only
# bundling needs (done above), and pg-cloudflare.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --omit=optional --no-audit --no-fund && npm cache clean --force

# ---------------------------------------------------------------- runtime
FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/dist ./dist

# The image's unprivileged user; the app writes nothing under /app.
USER node

EXPOSE 3000
# The API's /healthz by default; other processes serve /metrics and point
# HEALTHCHECK_URL at it (docker-compose.yml). No curl in the slim image: Node's fetch.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=5 \
  CMD ["node", "-e", "fetch(process.env.HEALTHCHECK_URL || 'http://127.0.0.1:' + (process.env.PORT || 3000) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "dist/src/api/server.js"]
