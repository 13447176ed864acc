#!/usr/bin/env node
// Entry of the `kpi-live` command. The TypeScript sources are compiled to
// dist/ by `npm run build` (`npm start` and `npm test` do it first).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const cli = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(cli))) {
  process.stderr.write('kpi-live is not built yet: run `npm run build` first.\n');
  process.exit(1);
}
const { main } = await import(cli.href);
const code = await main(process.argv.slice(2));
// Everything the command opened is closed by now; what may remain are idle
// keep-alive sockets of the HTTP client pool, which would only delay the exit.
process.exit(code);
