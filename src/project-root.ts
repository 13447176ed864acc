import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

function isKpiLiveRoot(dir: string): boolean {
  const manifest = join(dir, 'package.json');
  if (!existsSync(manifest)) return false;
  try {
    return (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'kpi-live';
  } catch {
    return false;
  }
}

/**
 * The folder holding kpi-live's package.json. Sources run from `src/` (tests)
 * and from `dist/src/` (built), so files shipped beside them (`couchdb/`,
 * `web/`) are found from the package root rather than by relative depth.
 */
export function projectRoot(): string {
  if (cached) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!isKpiLiveRoot(dir)) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('kpi-live package root not found');
    dir = parent;
  }
  cached = dir;
  return dir;
}
