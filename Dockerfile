# kpi-live service image: `docker build -t kpi-live .`, or `docker compose up`
# (compose.yaml). Without COUCHDB_URL it runs the embedded store with its data
# in /data (mount a volume there); with COUCHDB_URL it uses that CouchDB and
# keeps only its first access token and, unless KPI_SESSION_SECRET is set, its
# session key in /data.
#
# Base: Node 22 LTS on Debian bookworm, slim. Not alpine: the embedded store's
# LevelDB binding (leveldown, under pouchdb-server) ships prebuilt binaries for
# glibc on x64 and arm64 but for musl on x64 only, so alpine on arm64 would
# need a compiler in the build. The tag follows Node 22's patch releases;
# pin a digest (node:22-bookworm-slim@sha256:…) for reproducible builds.
ARG NODE_IMAGE=node:22-bookworm-slim

# Production dependencies, from the lockfile. Install scripts are skipped:
# leveldown loads its prebuilt binary at run time (node-gyp-build), and the
# optional sqlite3 binding that pouchdb-server lists is never loaded by the
# embedded store (couchdb/embedded-server.cjs uses LevelDB only).
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# The build: dev dependencies, then `npm run build` (dist/ and web/dist).
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY couchdb ./couchdb
COPY bench ./bench
COPY web ./web
RUN npm run build

FROM ${NODE_IMAGE} AS runtime
# A heap budget: without one V8 grows its heap lazily up to a limit set from
# the machine's memory. The aggregate needs under 100 MB for a million blobs.
# The embedded store's process inherits the same budget.
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3434 \
    KPI_DATA_DIR=/data \
    NODE_OPTIONS=--max-old-space-size=256
WORKDIR /app
# The code belongs to root and is only readable by the service's user (node,
# uid 1000), which may write nothing but /data.
COPY --chown=root:root package.json package-lock.json ./
COPY --chown=root:root --from=deps /app/node_modules ./node_modules
COPY --chown=root:root --from=build /app/dist ./dist
COPY --chown=root:root --from=build /app/web/dist ./web/dist
COPY --chown=root:root bin ./bin
COPY --chown=root:root couchdb ./couchdb
RUN mkdir -p /data && chown node:node /data && chmod 0700 /data
USER node
VOLUME ["/data"]
EXPOSE 3434
# node, not curl (the slim image has none). 200 is healthy, `degraded`
# included (reads still work); 503 (store unreachable) or no answer is not.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3434)+'/health',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "bin/kpi-live.js", "serve"]
