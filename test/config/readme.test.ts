import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configFields } from '../../src/config/config.js';
import { projectRoot } from '../../src/project-root.js';

describe('README', () => {
  const readme = readFileSync(join(projectRoot(), 'README.md'), 'utf8');

  it('documents every setting with its default (docs/configuration.md)', () => {
    const settings = readFileSync(join(projectRoot(), 'docs', 'configuration.md'), 'utf8');
    const rows = new Map(
      settings
        .split('\n')
        .filter((line) => line.startsWith('| `'))
        .map((line) => line.split('|').map((cell) => cell.trim()))
        .map((cells) => [cells[1], cells.slice(2, 4)]),
    );
    for (const spec of Object.values(configFields)) {
      const fallback = 'default' in spec ? `\`${JSON.stringify(spec.default)}\`` : '(unset)';
      expect(rows.get(`\`${spec.env}\``)).toEqual([fallback, spec.doc]);
    }
  });

  it('shows the two commands', () => {
    expect(readme).toContain('npm ci && npm start');
    expect(readme).toContain('npm test');
  });
});
