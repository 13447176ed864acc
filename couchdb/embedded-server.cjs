'use strict';
// Runs pouchdb-server (the embedded CouchDB-compatible store) inside this
// process, with the command-line arguments kpi-live passed to it.
//
// kpi-live spawns this file with a pipe on stdin. When kpi-live goes away, by
// any means including SIGKILL, the pipe closes and this process exits too, so
// no orphaned store keeps the LevelDB lock and blocks the next start.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));

require('pouchdb-server');
