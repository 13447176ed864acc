'use strict';
// Runs kpi-live's embedded store: pouchdb-server's CouchDB-compatible HTTP
// API (express-pouchdb over LevelDB), in this process.
//
//   node embedded-server.cjs --port <p> --host 127.0.0.1 --dir <data dir> --config <file> --credentials <file>
//
// Built from the same parts as the pouchdb-server command, with two layers
// left out, because they cost more than the rest of a write together:
// - 'validation' re-reads the design documents and recompiles
//   validate_doc_update for every document of a _bulk_docs write. kpi-live is
//   the only writer of this loopback-only store, validates blobs itself, and
//   its design documents have no validate_doc_update (couchdb/design-docs.ts).
// - 'compression' gzips answers that only travel over loopback.
//
// Only kpi-live may use it, not every process of the machine:
// - Every file it makes (databases, config, log) is readable by its user
//   only: the umask is set before anything is opened.
// - Every request must carry the admin credentials of the credentials file
//   kpi-live keeps in the data directory (read from that file, so the
//   password never appears on a command line or in an environment). They are
//   the only admin of the config's `admins` section, stored hashed.
//   express-pouchdb 4.2 has no require_valid_user: it lets anonymous
//   requests read and write everything but `_config` and a few admin routes,
//   and treats everyone as admin when `admins` is empty. So this file answers
//   401 itself to any request without those credentials, before
//   express-pouchdb sees it ('/', `_session` and `_utils` included).
//
// kpi-live spawns this file with a pipe on stdin. When kpi-live goes away, by
// any means including SIGKILL, the pipe closes and this process exits too, so
// no orphaned store keeps the LevelDB lock and blocks the next start.
process.umask(0o077);

const { createHash, timingSafeEqual } = require('node:crypto');
const fs = require('node:fs');
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

function fail(message) {
  process.stderr.write(`embedded store: ${message}\n`);
  process.exit(1);
}

// The parts pouchdb-server itself is made of, resolved from its own dependencies.
const fromServer = createRequire(require.resolve('pouchdb-server/package.json'));
const fromExpressPouch = createRequire(fromServer.resolve('express-pouchdb/package.json'));
const express = fromServer('express');
const PouchDB = fromServer('pouchdb-core')
  .plugin(fromServer('pouchdb-adapter-http'))
  .plugin(fromServer('pouchdb-replication'))
  .plugin(fromServer('pouchdb-mapreduce'))
  .plugin(fromServer('pouchdb-adapter-leveldb'));
const Auth = fromExpressPouch('pouchdb-auth');

/** The admin kpi-live made for this store; never printed. */
function readCredentials(file) {
  let parsed;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    fail(`cannot read the credentials file ${file} (${err.code ?? 'not JSON'})`);
  }
  if (typeof parsed?.user !== 'string' || typeof parsed?.password !== 'string' || !parsed.user || parsed.password.length < 32) {
    fail(`the credentials file ${file} must hold a user and a password of at least 32 characters`);
  }
  return { user: parsed.user, password: parsed.password };
}

/**
 * Makes the config's admins exactly kpi-live's admin, its password hashed
 * the way express-pouchdb checks it (pouchdb-auth's pbkdf2 form, so the
 * plain password never reaches this file; express-pouchdb would hash a plain
 * one itself, but only after reading it), before express-pouchdb reads it.
 */
async function writeConfig(file, credentials) {
  let config = {};
  if (fs.existsSync(file)) {
    try {
      config = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch {
      fail(`the config file ${file} is not JSON (delete it: kpi-live makes a new one)`);
    }
  }
  config.admins = await Auth.hashAdminPasswords({ [credentials.user]: credentials.password });
  // What these mean on CouchDB; express-pouchdb ignores them, the gate below enforces them.
  config.couch_httpd_auth = { ...config.couch_httpd_auth, require_valid_user: true };
  config.chttpd = { ...config.chttpd, require_valid_user: true };
  // express-pouchdb logs every request's headers at debug level, credentials included.
  if (config.log?.level === 'debug') config.log.level = 'info';
  const temp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temp, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 });
  fs.renameSync(temp, file);
}

const digest = (text) => createHash('sha256').update(text, 'utf8').digest();

/** Express middleware: 401 for any request without the admin's Basic credentials. */
function requireValidUser(credentials) {
  const expected = digest(`${credentials.user}:${credentials.password}`);
  return (req, res, next) => {
    const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(req.headers.authorization ?? '');
    const given = match ? digest(Buffer.from(match[1], 'base64').toString('utf8')) : undefined;
    if (given && timingSafeEqual(given, expected)) return next();
    const body = JSON.stringify({ error: 'unauthorized', reason: 'Authentication required.' });
    res.writeHead(401, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'www-authenticate': 'Basic realm="kpi-live embedded store"',
    });
    res.end(body);
  };
}

async function main() {
  const dir = path.resolve(arg('dir')) + path.sep;
  const configPath = arg('config');
  const credentials = readCredentials(arg('credentials'));
  await writeConfig(configPath, credentials);

  const pouchApp = fromServer('express-pouchdb')({
    configPath,
    mode: 'fullCouchDB',
    overrideMode: { exclude: ['validation', 'compression'] },
  });
  pouchApp.setPouchDB(PouchDB.defaults({ prefix: dir }));

  const app = express();
  app.disable('x-powered-by');
  app.use(requireValidUser(credentials));
  app.use(pouchApp);
  const server = app.listen(Number(arg('port')), arg('host'));
  server.on('error', (err) => fail(err.message));
}

main().catch((err) => fail(err.message));
