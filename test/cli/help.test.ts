/**
 * `kpi-live <command> --help` answers with that command's usage and exit 0,
 * as an operator expects, not with "Unknown option '--help'".
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { main, usageOf } from '../../src/cli/main.js';

const COMMANDS = ['serve', 'simulate', 'rebuild', 'import', 'export', 'token', 'user', 'config'];

function capture() {
  let out = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  });
  return () => out;
}

describe('kpi-live <command> --help', () => {
  afterEach(() => vi.restoreAllMocks());

  it.each(COMMANDS)('%s --help and -h print its usage, only its, and exit 0', async (command) => {
    for (const flag of ['--help', '-h']) {
      const out = capture();
      expect(await main([command, flag])).toBe(0);
      const lines = out()
        .split('\n')
        .filter((l) => l.startsWith('  kpi-live '));
      expect(lines.length).toBeGreaterThan(0);
      expect(lines.every((l) => l.startsWith(`  kpi-live ${command}`))).toBe(true);
      vi.restoreAllMocks();
    }
  });

  it('takes --help among other options, and `help <command>` alike', async () => {
    let out = capture();
    expect(await main(['export', '--from', '2026-01-01', '--help'])).toBe(0);
    expect(out()).toMatch(/kpi-live export --direct/);
    vi.restoreAllMocks();
    out = capture();
    expect(await main(['help', 'rebuild'])).toBe(0);
    expect(out()).toBe(usageOf('rebuild'));
    expect(out()).toMatch(/--dry-run/);
  });

  it('names every command in the whole usage, and `help` of an unknown one prints it and exits 1', async () => {
    const out = capture();
    expect(await main(['help', 'nope'])).toBe(1);
    for (const command of COMMANDS) expect(out()).toContain(`  kpi-live ${command}`);
  });
});
