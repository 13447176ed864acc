# kpi-live service image. Without COUCHDB_URL it runs the embedded store with
# its data in /data (mount a volume there); with COUCHDB_URL it uses that CouchDB.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY couchdb ./couchdb
COPY bench ./bench
RUN npm run build

FROM node:20-bookworm-slim
# A heap budget: without one V8 grows its heap lazily up to a limit set from
# the machine's memory. The aggregate needs under 100 MB for a million blobs.
ENV NODE_ENV=production HOST=0.0.0.0 PORT=3434 KPI_DATA_DIR=/data NODE_OPTIONS=--max-old-space-size=256
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY couchdb ./couchdb
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME /data
EXPOSE 3434
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||3434)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "bin/kpi-live.js", "serve"]
