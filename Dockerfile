# orderflow application image: one image, every process. docker-compose.yml
# picks the process per service with `command:`; the default is the API.
#
# Single stage on purpose: processes run TypeScript through tsx (no build
# step), and `prisma generate` needs the Prisma CLI from devDependencies.
FROM node:20-bookworm-slim

WORKDIR /app

# Dependencies first, so source edits do not invalidate this layer.
# `npm ci` installs exactly package-lock.json (dev dependencies included:
# the Prisma CLI is one). Inside Docker, with internet, Prisma's own engine
# downloads work, so no offline workaround is needed here.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

COPY . .

# The generated client (src/generated) is git- and docker-ignored: build it
# here from prisma/schema.prisma so the image never carries a stale one.
RUN npx prisma generate

# The orders worker's workflow bundle, built once here instead of by webpack at
# every worker start (the worker checks that it matches its sources).
RUN node --import tsx scripts/build-workflow-bundle.ts

# Set after `npm ci` (which would otherwise skip devDependencies).
ENV NODE_ENV=production

# Run as the image's unprivileged user; the app writes nothing under /app.
USER node

EXPOSE 3000
CMD ["node", "--import", "tsx", "src/api/server.ts"]
