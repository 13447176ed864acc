/**
 * The dashboard in a real browser (headless Chromium from the Debian package,
 * driven by playwright-core): it shows the numbers /api/kpis gives, updates
 * live when blobs arrive, draws deploy markers, shows a banner when the
 * connection is lost and recovers. Screenshots go to test-results/.
 *
 * Where Chromium is missing the test is skipped with a message, except in CI
 * (.ci/run installs it), where a missing browser is a failure.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KpiAnswer } from '../../src/aggregate/kpi-types.js';
import { projectRoot } from '../../src/project-root.js';
import { ingest, nowTimestamp, startTestApp, type TestApp } from '../harness/app.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const available = existsSync(CHROMIUM);
if (!available && process.env.CI) throw new Error(`Chromium not found at ${CHROMIUM}: .ci/run installs the Debian package chromium`);
if (!available) console.warn(`[kpi-live tests] no Chromium at ${CHROMIUM}: the real-browser test is skipped (apt-get install chromium)`);

const SHOTS = join(projectRoot(), 'test-results');
const SIX_HOURS = 6 * 3_600_000;

describe.skipIf(!available)('dashboard in headless Chromium', () => {
  let t: TestApp;
  let browser: Browser;
  let page: Page;
  let url: string;

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    t = await startTestApp({ streamCoalesceMs: 100, feedLongpollMs: 1000 }, { listen: true });
    url = `http://127.0.0.1:${(t.app.server.address() as { port: number }).port}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  });

  afterAll(async () => {
    await browser?.close();
    await t?.close();
  });

  const post = async (events: string[][], n: number) => {
    const blobs = Array.from({ length: n }, () => ({
      timestamp: nowTimestamp(),
      event_stream: events.map(([name], i) => [name, (i + 1) * 500]),
      number_emails: 2,
    }));
    await ingest(t, blobs);
  };
  const api = async () =>
    (await t.app.inject(`/api/kpis?from=${nowTimestamp() - SIX_HOURS + 600_000}&to=${nowTimestamp() + 600_000}&bucket=10m`)).json() as KpiAnswer;
  const tile = (id: string) => page.locator(`kpi-tile[data-kpi="${id}"] .value`);
  const step = (funnel: string, n: number) => page.locator(`kpi-funnel[data-funnel="${funnel}"] .step[data-step="${n}"] .count`);

  it('serves the page under a strict CSP with no errors, and shows the empty state', async () => {
    const errors: string[] = [];
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    page.on('pageerror', (e) => errors.push(String(e)));
    const response = await page.goto(`${url}/?range=${SIX_HOURS}`);
    expect(response?.headers()['content-security-policy']).toContain("script-src 'self'");
    await page.getByRole('status').getByText('live').waitFor({ timeout: 10_000 });
    await page.getByText('No sign-in dialogs in this window yet').waitFor();
    // no deploy yet: the comparison says it is day over day, and before/after cannot be picked
    const comparison = page.locator('select[aria-label="comparison"]');
    expect(await comparison.inputValue()).toBe('day');
    expect(await comparison.locator('option[value="deploy"]').isDisabled()).toBe(true);
    await page.screenshot({ path: join(SHOTS, 'dashboard-empty.png') });
    expect(errors).toEqual([]);
  });

  it('updates tiles and funnel within a second of blobs arriving, with the numbers of /api/kpis', async () => {
    await post([['screen.rp_info'], ['screen.set_password'], ['user.user_staged'], ['user.user_confirmed'], ['assertion_generated']], 12);
    await post([['screen.rp_info'], ['screen.set_password'], ['user.user_staged']], 5);
    await post([['screen.rp_info']], 8);
    // within 1 s of the store acknowledging the blobs: 12 of them logged in as new users
    await expect.poll(async () => tile('newUsers').textContent(), { timeout: 1000, interval: 50 }).toBe('12');
    await expect.poll(async () => (await api()).series[0]!.total.dialogs, { timeout: 5000 }).toBe(25);
    const expected = (await api()).series[0]!.total;
    await expect.poll(async () => tile('bounceRate').textContent(), { timeout: 1000 }).toBe(`${(expected.bounceRate! * 100).toFixed(1)}%`);
    expect(await tile('newUsers').textContent()).toBe(String(expected.newUsersEstimate));
    expect(await tile('additionalEmail').textContent()).toBe(`${(expected.additionalEmailShare! * 100).toFixed(1)}%`);
    for (const n of [1, 2, 3, 4]) expect(await step('new-user', n).textContent()).toBe(String(expected.newUserFunnel[n - 1]!.count));
    await page.screenshot({ path: join(SHOTS, 'dashboard-live.png'), fullPage: true });
  });

  it('draws a deploy marker as soon as it is posted', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/deploys',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ version: 'v9.9.9', note: 'browser test' }),
    });
    expect(res.statusCode).toBe(201);
    await page.locator('kpi-chart li[data-deploy]').getByText('v9.9.9').waitFor({ timeout: 2000 });
    const comparison = page.locator('select[aria-label="comparison"]');
    await expect.poll(async () => comparison.inputValue(), { timeout: 2000 }).toBe('deploy');
    expect(await comparison.locator('option[value="deploy"]').isDisabled()).toBe(false);
    await page.screenshot({ path: join(SHOTS, 'dashboard-deploy.png'), fullPage: true });
  });

  it('shows a banner when the connection is lost, and recovers by itself', async () => {
    for (const client of t.app.websocketServer.clients) client.terminate();
    await page.getByRole('alert').getByText('Connection to kpi-live lost').waitFor({ timeout: 3000 });
    await page.screenshot({ path: join(SHOTS, 'dashboard-disconnected.png') });
    await post([['screen.rp_info'], ['screen.pick_email'], ['assertion_generated']], 4);
    await page.getByRole('alert').waitFor({ state: 'detached', timeout: 10_000 });
    const expected = (await api()).series[0]!.total;
    await expect.poll(async () => step('new-user', 1).textContent(), { timeout: 3000 }).toBe(String(expected.newUserFunnel[0]!.count));
    await expect.poll(async () => tile('bounceRate').textContent(), { timeout: 3000 }).toBe(`${(expected.bounceRate! * 100).toFixed(1)}%`);
  });
});
