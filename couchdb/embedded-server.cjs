'use strict';
// Runs kpi-live's embedded store: pouchdb-server's CouchDB-compatible HTTP
// API (express-pouchdb over LevelDB), in this process.
//
//   node embedded-server.cjs --port <p> --host 127.0.0.1 --dir <data dir> --config <file>
//
// Built from the same parts as the pouchdb-server command, with two layers
// left out, because they cost more than the rest of a write together:
// - 'validation' re-reads the design documents and recompiles
//   validate_doc_update for every document of a _bulk_docs write. kpi-live is
//   the only writer of this loopback-only store and validates blobs itself;
//   on a real CouchDB the design document's guard is enforced as usual.
// - 'compression' gzips answers that only travel over loopback.
//
// kpi-live spawns this file with a pipe on stdin. When kpi-live goes away, by
// any means including SIGKILL, the pipe closes and this process exits too, so
// no orphaned store keeps the LevelDB lock and blocks the next start.
const path = require('node:path');
const { createRequire } = require('node:module');

process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));

function arg(name) {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0 || i + 1 >= process.argv.length) throw new Error(`embedded store: --${name} is required`);
  return process.argv[i + 1];
}

// The parts pouchdb-server itself is made of, resolved from its own dependencies.
const fromServer = createRequire(require.resolve('pouchdb-server/package.json'));
const express = fromServer('express');
const PouchDB = fromServer('pouchdb-core')
  .plugin(fromServer('pouchdb-adapter-http'))
  .plugin(fromServer('pouchdb-replication'))
  .plugin(fromServer('pouchdb-mapreduce'))
  .plugin(fromServer('pouchdb-adapter-leveldb'));

const dir = path.resolve(arg('dir')) + path.sep;
const pouchApp = fromServer('express-pouchdb')({
  configPath: arg('config'),
  mode: 'fullCouchDB',
  overrideMode: { exclude: ['validation', 'compression'] },
});
pouchApp.setPouchDB(PouchDB.defaults({ prefix: dir }));

const app = express();
app.use(pouchApp);
const server = app.listen(Number(arg('port')), arg('host'));
server.on('error', (err) => {
  process.stderr.write(`embedded store: ${err.message}\n`);
  process.exit(1);
});
