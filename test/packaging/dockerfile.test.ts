/**
 * The Dockerfile, read line by line (no Docker engine is needed): what it
 * builds matches package.json's scripts and tsconfig.build.json, the image
 * carries what the running service reads, and it runs as a user with a heap
 * budget, a health check and no secret in a layer. Building the image itself
 * needs Docker and is not part of the tests.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/project-root.js';

const root = projectRoot();

interface Instruction {
  keyword: string;
  args: string;
}

/** Instructions with their continuation lines joined, comments dropped. */
function instructions(text: string): Instruction[] {
  const joined = text
    .split('\n')
    .filter((line) => !line.trimStart().startsWith('#'))
    .join('\n')
    .replace(/\\\n/g, ' ');
  return joined
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => {
      const [keyword, ...rest] = line.split(/\s+/);
      return { keyword: keyword!.toUpperCase(), args: rest.join(' ') };
    });
}

const all = instructions(readFileSync(join(root, 'Dockerfile'), 'utf8'));
/** Stages by name (`FROM … AS name`); the last one is the image. */
const stages = new Map<string, Instruction[]>();
let current: Instruction[] = [];
for (const instruction of all) {
  if (instruction.keyword === 'FROM') {
    current = [instruction];
    stages.set(/\bAS\s+(\S+)/i.exec(instruction.args)?.[1] ?? `stage${stages.size}`, current);
  } else {
    current.push(instruction);
  }
}
const [runtime] = [...stages.values()].slice(-1);
const args = (stage: Instruction[] | undefined, keyword: string) => (stage ?? []).filter((i) => i.keyword === keyword).map((i) => i.args);
const packageJson = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };

describe('Dockerfile', () => {
  it('builds on a tagged Node LTS image, never :latest', () => {
    const nodeImage = /^ARG NODE_IMAGE=(\S+)$/m.exec(readFileSync(join(root, 'Dockerfile'), 'utf8'))?.[1];
    expect(nodeImage).toMatch(/^node:(22|24)-bookworm-slim$/);
    for (const from of args(all, 'FROM')) {
      expect(from).toMatch(/^\$\{NODE_IMAGE\}( AS \S+)?$/);
    }
  });

  it('installs with the lockfile, builds with the dev dependencies, and ships the production ones only', () => {
    expect(args(stages.get('deps'), 'RUN').join(' ')).toMatch(/npm ci --omit=dev/);
    const build = args(stages.get('build'), 'RUN').join(' ; ');
    expect(build).toMatch(/npm ci (?!.*--omit)/);
    expect(build).toContain('npm run build');
    expect(args(runtime, 'COPY')).toContain('--chown=root:root --from=deps /app/node_modules ./node_modules');
  });

  it('copies into the build everything `npm run build` compiles', () => {
    expect(packageJson.scripts.build).toBe('tsc -p tsconfig.build.json && vite build web --logLevel warn');
    const copied = args(stages.get('build'), 'COPY').flatMap((a) => a.split(' ').slice(0, -1));
    const tsconfigBuild = JSON.parse(readFileSync(join(root, 'tsconfig.build.json'), 'utf8')) as { include: string[] };
    for (const needed of ['tsconfig.json', 'tsconfig.build.json', 'web', ...tsconfigBuild.include]) expect(copied).toContain(needed);
  });

  it('gives the image what the running service reads, owned by root', () => {
    const copies = args(runtime, 'COPY');
    for (const copy of copies) expect(copy).toMatch(/^--chown=root:root /);
    const targets = copies.map((copy) => copy.split(' ').slice(-1)[0]);
    // package.json marks the project root; bin/ starts dist/; web/dist is the dashboard;
    // couchdb/ holds the embedded store's runner
    for (const needed of ['./', './node_modules', './dist', './web/dist', './bin', './couchdb']) expect(targets).toContain(needed);
    expect(readFileSync(join(root, 'bin', 'kpi-live.js'), 'utf8')).toContain('../dist/src/cli/main.js');
    expect(existsSync(join(root, 'couchdb', 'embedded-server.cjs'))).toBe(true);
  });

  it('runs as node, on 0.0.0.0:3434, with a 256 MB heap budget and /data as its volume', () => {
    const env = args(runtime, 'ENV').join(' ');
    for (const setting of ['NODE_ENV=production', 'HOST=0.0.0.0', 'PORT=3434', 'KPI_DATA_DIR=/data', 'NODE_OPTIONS=--max-old-space-size=256']) {
      expect(env).toContain(setting);
    }
    const keywords = runtime!.map((i) => i.keyword);
    expect(args(runtime, 'USER')).toEqual(['node']);
    expect(keywords.indexOf('USER')).toBeLessThan(keywords.indexOf('CMD'));
    expect(args(runtime, 'EXPOSE')).toEqual(['3434']);
    expect(args(runtime, 'VOLUME')).toEqual(['["/data"]']);
    expect(JSON.parse(args(runtime, 'CMD')[0]!)).toEqual(['node', 'bin/kpi-live.js', 'serve']);
  });

  it('checks health with node against /health (the slim image has no curl)', () => {
    const [healthcheck] = args(runtime, 'HEALTHCHECK');
    const command = JSON.parse(healthcheck!.slice(healthcheck!.indexOf('CMD ') + 4)) as string[];
    expect(command[0]).toBe('node');
    expect(command.join(' ')).toContain('/health');
    expect(healthcheck).not.toMatch(/curl|wget/);
  });

  it('puts no secret in a layer, and its context holds only what it copies', () => {
    for (const instruction of all.filter((i) => i.keyword === 'ENV' || i.keyword === 'ARG')) {
      expect(instruction.args).not.toMatch(/PASSWORD|SECRET|TOKEN|COUCHDB_URL|KPI_USERS/);
    }
    const ignore = readFileSync(join(root, '.dockerignore'), 'utf8')
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line && !line.startsWith('#'));
    expect(ignore[0]).toBe('*');
    const allowed = ignore.filter((line) => line.startsWith('!')).map((line) => line.slice(1).replace(/\/$/, ''));
    for (const secret of ['.env', 'data', 'node_modules', 'dist', '.git']) expect(allowed).not.toContain(secret);
    expect(ignore).toContain('web/dist');
    const fromContext = all
      .filter((i) => i.keyword === 'COPY' && !i.args.includes('--from='))
      .flatMap((i) =>
        i.args
          .split(' ')
          .filter((part) => !part.startsWith('--'))
          .slice(0, -1),
      );
    for (const source of fromContext) expect(allowed, source).toContain(source);
  });
});
