/**
 * The dashboard in a real browser (headless Chromium from the Debian package,
 * driven by playwright-core): it shows the numbers /api/kpis gives, updates
 * live when blobs arrive, draws deploy markers, shows a banner when the
 * connection is lost and recovers; splits into the top values and Other,
 * zooms, keeps custom ranges in its URL, edits thresholds and shows alert
 * states, works by keyboard; a user signs in and out. Screenshots go to
 * test-results/.
 *
 * Where Chromium is missing the test is skipped with a message, except in CI
 * (.ci/run installs it), where a missing browser is a failure.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Locator, type Page, type Route } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KpiAnswer, Thresholds } from '../../src/contract/kpis.js';
import type { AlertsBody } from '../../src/alerts/types.js';
import { userEntry } from '../../src/auth/credentials.js';
import { projectRoot } from '../../src/project-root.js';
import { ingest, nowTimestamp, postSessions, startTestApp, type TestApp } from '../harness/app.js';
import { waitUntil } from '../harness/process.js';
import { parseBreaks, seededRandom, simulateSession, USER_AGENTS } from '../../src/simulate/generator.js';
import { CHROMIUM_LAUNCH } from '../../bench/common.js';

const CHROMIUM = CHROMIUM_LAUNCH.executablePath;
const available = existsSync(CHROMIUM);
if (!available && process.env.CI) throw new Error(`Chromium not found at ${CHROMIUM}: .ci/run installs the Debian package chromium`);
if (!available) console.warn(`[kpi-live tests] no Chromium at ${CHROMIUM}: the real-browser test is skipped (apt-get install chromium)`);

const SHOTS = join(projectRoot(), 'test-results');
const SIX_HOURS = 6 * 3_600_000;
const LAUNCH = CHROMIUM_LAUNCH;

/** The element focused in the page, looking into shadow roots: its text (a select: SELECT) and its focus ring. */
const focused = (page: Page) =>
  page.evaluate<{ text: string; outline: string }>(`(() => {
    let active = document.activeElement;
    while (active && active.shadowRoot && active.shadowRoot.activeElement) active = active.shadowRoot.activeElement;
    if (!active) return { text: '', outline: '' };
    const style = getComputedStyle(active);
    return { text: active.tagName === 'SELECT' ? 'SELECT' : (active.textContent || '').trim(), outline: style.outlineStyle + ' ' + style.outlineWidth };
  })()`);

/** A test app listening on loopback, and a Chromium page of `viewport` to look at it (screenshots go to test-results/). */
async function openBrowserOn(
  config: Parameters<typeof startTestApp>[0],
  viewport: { width: number; height: number },
): Promise<{ t: TestApp; browser: Browser; page: Page; url: string }> {
  mkdirSync(SHOTS, { recursive: true });
  const t = await startTestApp(config, { listen: true });
  const url = `http://127.0.0.1:${(t.app.server.address() as { port: number }).port}`;
  const browser = await chromium.launch(LAUNCH);
  const page = await browser.newPage({ viewport });
  return { t, browser, page, url };
}

async function closeBrowserOn(t: TestApp | undefined, browser: Browser | undefined): Promise<void> {
  await browser?.close();
  await t?.close();
}

describe.skipIf(!available)('dashboard in headless Chromium', () => {
  let t: TestApp;
  let browser: Browser;
  let page: Page;
  let url: string;

  beforeAll(async () => {
    ({ t, browser, page, url } = await openBrowserOn({ streamCoalesceMs: 100, feedLongpollMs: 1000 }, { width: 1280, height: 1000 }));
  });
  afterAll(() => closeBrowserOn(t, browser));

  const post = async (events: string[][], n: number, extra: Record<string, unknown> = {}) => {
    const blobs = Array.from({ length: n }, () => ({
      timestamp: nowTimestamp(),
      event_stream: events.map(([name], i) => [name, (i + 1) * 500]),
      number_emails: 2,
      ...extra,
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

  it('splits the chart into the top 8 locales and Other, as /api/kpis?top=8 does, and keeps the funnels whole', async () => {
    // ten locales with 10, 9, … 1 dialogs, besides the dialogs without a locale (Unknown) so far
    const langs = ['en', 'es', 'pt-BR', 'de', 'fr', 'it', 'pl', 'tr', 'ru', 'nl'];
    for (const [i, lang] of langs.entries()) await post([['screen.rp_info'], ['screen.pick_email']], 10 - i, { lang });
    const window = `from=${nowTimestamp() - SIX_HOURS + 600_000}&to=${nowTimestamp() + 600_000}&bucket=10m`;
    await expect.poll(async () => (await api()).series[0]!.total.dialogs, { timeout: 5000 }).toBe(84);
    const top = (await t.app.inject(`/api/kpis?${window}&segment=locale&top=8`)).json() as KpiAnswer;
    const all = (await api()).series[0]!.total;
    expect(top.series.map((s) => s.segment)).toHaveLength(9);
    expect(top.series.at(-1)!.segment).toBe('Other');
    expect(top.series.reduce((n, s) => n + s.total.dialogs, 0)).toBe(all.dialogs);
    expect((await t.app.inject(`/api/kpis?${window}&top=8`)).json()).toMatchObject({ statusCode: 400, field: 'query.top' });

    await page.locator('select').first().selectOption('locale');
    await expect.poll(async () => new URL(page.url()).searchParams.get('segment')).toBe('locale');
    const rows = page.locator('kpi-chart table.summary tbody th');
    await expect.poll(async () => rows.allTextContents(), { timeout: 3000 }).toEqual(top.series.map((s) => s.segment));
    // the funnels and tiles still count everybody
    expect(await step('new-user', 1).textContent()).toBe(String(all.newUserFunnel[0]!.count));
    expect(top.overall).toEqual(all);
    await expect.poll(async () => tile('bounceRate').textContent(), { timeout: 3000 }).toBe(`${(all.bounceRate! * 100).toFixed(1)}%`);
    await page.screenshot({ path: join(SHOTS, 'dashboard-split.png'), fullPage: true });
    await page.locator('select').first().selectOption('');
    await expect.poll(async () => rows.allTextContents(), { timeout: 3000 }).toEqual(['all']);
  });

  it('zooms the chart to a dragged sub-range at a finer bucket, by keyboard too, and resets', async () => {
    await page.getByRole('button', { name: '24 h', exact: true }).click();
    await expect.poll(async () => new URL(page.url()).searchParams.get('range')).toBe(String(24 * 3_600_000));
    const note = page.locator('.zoom-note');
    const over = page.locator('kpi-chart .u-over');
    await over.waitFor();
    const box = (await over.boundingBox())!;
    const finer = page.waitForRequest((r) => r.url().includes('/api/kpis?') && r.url().includes('bucket=10m'));
    await page.mouse.move(box.x + box.width * 0.75, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.95, box.y + box.height / 2, { steps: 5 });
    await page.mouse.up();
    const zoomed = new URL((await finer).url()).searchParams;
    await expect.poll(async () => note.textContent()).toMatch(/^Zoomed to .*, 10-minute points \(not live\)$/);
    // the chart draws the zoomed window, whatever data it holds
    const drawn = () => page.locator('kpi-chart').evaluate((el) => (el as unknown as { drawnRange?: { from: number; to: number } }).drawnRange);
    await expect.poll(drawn).toEqual({ from: Number(zoomed.get('from')), to: Number(zoomed.get('to')) });
    await page.screenshot({ path: join(SHOTS, 'dashboard-zoomed.png'), fullPage: true });
    const reset = page.getByRole('button', { name: 'Reset zoom' });
    await reset.focus();
    await page.keyboard.press('Enter');
    await expect.poll(async () => note.textContent()).toBe('Drag across the chart to zoom');
    await expect.poll(async () => ((r) => r && r.to - r.from)(await drawn())).toBe(24 * 3_600_000);
    await page.getByRole('button', { name: 'Zoom in' }).focus();
    await page.keyboard.press('Enter');
    await expect.poll(async () => note.textContent()).toMatch(/^Zoomed to .*, 10-minute points/);
    const ring = await focused(page);
    expect(ring).toMatchObject({ text: 'Zoom in', outline: 'solid 3px' });
    await page.getByRole('button', { name: 'Reset zoom' }).click();
  });

  it('reaches every header control by keyboard, with a visible focus ring', async () => {
    await page.goto(`${url}/?range=${SIX_HOURS}`);
    await page.getByRole('status').getByText('live').waitFor({ timeout: 10_000 });
    const seen: string[] = [];
    for (let i = 0; i < 9; i++) {
      await page.keyboard.press('Tab');
      const f = await focused(page);
      seen.push(f.text);
      expect(f.outline, f.text).toBe('solid 3px');
    }
    expect(seen.slice(0, 7)).toEqual(['1 h', '6 h', '24 h', '7 d', '30 d', 'Custom', 'SELECT']);
    await page.screenshot({ path: join(SHOTS, 'dashboard-focus.png') });
  });

  it('shows a custom range kept in the URL; one in the past says so', async () => {
    await page.getByRole('button', { name: 'Custom' }).click();
    const pad = (n: number) => String(n).padStart(2, '0');
    const local = (ms: number) => {
      const d = new Date(ms);
      return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
    };
    const from = nowTimestamp() - 5 * 3_600_000;
    const to = nowTimestamp() - 3 * 3_600_000;
    await page.getByLabel('From', { exact: true }).fill(local(from));
    await page.getByLabel('To', { exact: true }).fill(local(to));
    await page.getByRole('button', { name: 'Show' }).click();
    await expect.poll(async () => Object.fromEntries(new URL(page.url()).searchParams)).toEqual({ from: String(from), to: String(to) });
    await page.getByRole('status').getByText('past window').waitFor({ timeout: 3000 });
    await page.getByText('No sign-in dialogs in this window.').waitFor();
    // the same URL shows the same window
    await page.reload();
    await page.getByRole('status').getByText('past window').waitFor({ timeout: 10_000 });
    expect(await page.getByRole('button', { name: 'Custom' }).getAttribute('aria-pressed')).toBe('true');
    expect(await page.getByLabel('From', { exact: true }).inputValue()).toBe(local(from));
    await page.screenshot({ path: join(SHOTS, 'dashboard-custom.png') });
    await page.getByRole('button', { name: '6 h', exact: true }).click();
    await page.getByRole('status').getByText('live').waitFor({ timeout: 3000 });
  });

  it('edits thresholds in a dialog by keyboard, shows the service refusing one, and colours tiles and steps with alert badges', async () => {
    // the thresholds and alert routes as the contract has them, answered by the test
    let stored: Thresholds = {};
    const since = Date.now() - 25 * 60_000;
    const alerts = (): AlertsBody => ({
      windowMs: 3_600_000,
      alerts: stored.bounceRate ? [{ key: 'bounceRate', state: 'breached', value: 0.3, bound: 'max', limit: stored.bounceRate.max!, since }] : [],
    });
    await page.route('**/api/thresholds', async (route: Route) => {
      if (route.request().method() === 'GET') return route.fulfill({ json: { thresholds: stored } });
      const body = route.request().postDataJSON() as { thresholds: Thresholds };
      if ((body.thresholds.newUsers?.min ?? 0) < 0)
        return route.fulfill({
          status: 400,
          json: { statusCode: 400, message: 'body.thresholds.newUsers.min must be >= 0', field: 'body.thresholds.newUsers.min' },
        });
      stored = body.thresholds;
      return route.fulfill({ json: { thresholds: stored } });
    });
    await page.route('**/api/alerts', (route: Route) => route.fulfill({ json: alerts() }));
    await page.reload();
    const edit = page.getByRole('button', { name: 'Thresholds…' });
    await edit.focus();
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog', { name: 'Alert thresholds' });
    await dialog.waitFor();
    await page.keyboard.type('-5'); // focus starts in the first box: New users, minimum
    await dialog.getByLabel('Bounce rate: maximum (%)').fill('1');
    await dialog.getByLabel('New-user funnel: Choose password → Email verified: minimum (%)').fill('99');
    await page.keyboard.press('Enter');
    await dialog.getByRole('alert').getByText('body.thresholds.newUsers.min must be >= 0').waitFor();
    expect(await dialog.getByLabel('New users: minimum').getAttribute('aria-invalid')).toBe('true');
    await page.screenshot({ path: join(SHOTS, 'dashboard-thresholds-dialog.png') });
    await dialog.getByLabel('New users: minimum').fill('');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.waitFor({ state: 'hidden' });
    expect(stored).toEqual({ bounceRate: { max: 0.01 }, 'new-user.step3': { min: 0.99 } });
    // focus is back on the button that opened the dialog
    expect((await focused(page)).text).toBe('Thresholds…');
    const bounce = page.locator('kpi-tile[data-kpi="bounceRate"]');
    await expect.poll(async () => bounce.getAttribute('breached')).toBe('');
    await expect
      .poll(async () => (await bounce.locator('.breach').textContent())?.replace(/\s+/g, ' ').trim(), { timeout: 20_000 })
      .toMatch(/^⚠ Outside threshold: above max 1\.0% alert since \d\d:\d\d$/);
    const step3 = page.locator('kpi-funnel[data-funnel="new-user"] .step[data-step="3"] .breach');
    expect((await step3.textContent())?.replace(/\s+/g, ' ').trim()).toMatch(/^⚠ [\d.]+% from step 2: below min 99\.0%$/);
    await page.screenshot({ path: join(SHOTS, 'dashboard-alerts.png'), fullPage: true });
    await page.unroute('**/api/thresholds');
    await page.unroute('**/api/alerts');
  });

  it('shows the TV/wall mode without controls', async () => {
    await page.goto(`${url}/?range=${SIX_HOURS}&tv=1`);
    await page.getByRole('status').getByText('live').waitFor({ timeout: 10_000 });
    expect(await page.getByRole('button', { name: '6 h', exact: true }).isVisible()).toBe(false);
    await page.screenshot({ path: join(SHOTS, 'dashboard-tv.png'), fullPage: true });
  });

  it('follows a dark system theme: dark page, light text, funnel counts light on a dark pill', async () => {
    await page.emulateMedia({ colorScheme: 'dark' });
    try {
      await page.goto(`${url}/?range=${SIX_HOURS}`);
      await page.getByRole('status').getByText('live').waitFor({ timeout: 10_000 });
      const luminance = (rgb: string) => {
        const [r, g, b] = (rgb.match(/[\d.]+/g) ?? []).slice(0, 3).map((v) => Number(v) / 255);
        return 0.2126 * r! + 0.7152 * g! + 0.0722 * b!;
      };
      expect(luminance(await computedStyle(page.locator('body'), 'backgroundColor'))).toBeLessThan(0.2);
      const count = page.locator('kpi-funnel .count').first();
      await count.waitFor({ timeout: 10_000 });
      expect(luminance(await computedStyle(count, 'color'))).toBeGreaterThan(0.7);
      await page.screenshot({ path: join(SHOTS, 'dashboard-dark.png'), fullPage: true });
    } finally {
      await page.emulateMedia({ colorScheme: 'light' });
    }
  });
});

/** A computed style of an element, read in the page (these tests are type-checked without the DOM library). */
function computedStyle(locator: Locator, property: 'color' | 'backgroundColor'): Promise<string> {
  return locator.evaluate(
    (el, p) => (globalThis as unknown as { getComputedStyle(e: unknown): Record<string, string> }).getComputedStyle(el)[p] ?? '',
    property,
  );
}

describe.skipIf(!available)('dashboard sign-in in headless Chromium', () => {
  let t: TestApp;
  let browser: Browser;
  let page: Page;
  let url: string;

  beforeAll(async () => {
    ({ t, browser, page, url } = await openBrowserOn(
      { trustLoopback: false, users: [userEntry('alice', 'correct horse battery')] },
      { width: 1280, height: 900 },
    ));
  });
  afterAll(() => closeBrowserOn(t, browser));

  /** Signs in through the login page's form, which sends the browser back to `next`. */
  const signIn = async () => {
    const next = new URL(page.url()).searchParams.get('next') ?? '/';
    await page.getByLabel('User name').fill('alice');
    await page.getByLabel('Password').fill('correct horse battery');
    await page.getByRole('button', { name: 'Sign in' }).first().click();
    await page.waitForURL((u) => u.pathname + u.search === next);
  };

  it('sends a browser that is not signed in to sign in and back, shows the user, and sends the CSRF token with changes', async () => {
    await page.goto(`${url}/?range=3600000`);
    expect(new URL(page.url()).pathname).toBe('/login');
    await signIn();
    await page.getByRole('status').getByText('live').waitFor({ timeout: 10_000 });
    expect(new URL(page.url()).search).toBe('?range=3600000');
    await page.getByText('Signed in as alice').waitFor();
    const session = (await page.evaluate(() => fetch('/api/session').then((r) => r.json()))) as { csrfToken: string };
    // what the dashboard sends when it saves thresholds
    let sent: Record<string, string> = {};
    await page.route('**/api/thresholds', async (route: Route) => {
      if (route.request().method() === 'PUT') sent = route.request().headers();
      return route.fulfill({ json: { thresholds: {} } });
    });
    await page.reload();
    await page.getByRole('button', { name: 'Thresholds…' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Save' }).click();
    await page.getByRole('dialog').waitFor({ state: 'hidden' });
    expect(sent['x-csrf-token']).toBe(session.csrfToken);
    expect(sent.authorization).toBeUndefined();
    await page.unroute('**/api/thresholds');
    await page.screenshot({ path: join(SHOTS, 'dashboard-signed-in.png') });
  });

  it('goes to sign in, with the way back, when the session is gone; Sign out ends at the login page', async () => {
    await page.context().clearCookies();
    await page.getByRole('button', { name: 'Zoom in' }).click();
    await page.waitForURL((u) => u.pathname === '/login');
    expect(new URL(page.url()).searchParams.get('next')).toBe('/?range=3600000');
    await signIn();
    await page.getByText('Signed in as alice').waitFor({ timeout: 10_000 });
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL((u) => u.pathname === '/login');
    expect((await page.request.get(`${url}/api/session`)).status()).toBe(401);
  });
});

describe.skipIf(!available)('deploy verdict panel in headless Chromium', () => {
  let t: TestApp;
  let browser: Browser;
  let page: Page;
  let url: string;

  beforeAll(async () => {
    ({ t, browser, page, url } = await openBrowserOn({ streamCoalesceMs: 100, feedLongpollMs: 500, maxBlobAgeHours: 240 }, { width: 1280, height: 1000 }));
    // a week of baseline at the same hours, then a deploy that breaks "choose password"
    const random = seededRandom(99);
    const now = Date.now();
    const sessions = (n: number, at: number, breaks: string[] = []) =>
      Array.from({ length: n }, () => simulateSession(random, { now: at, breaks: parseBreaks(breaks) }));
    for (let k = 1; k <= 7; k++) await postSessions(t, sessions(150, now - k * 86_400_000), { perRequest: 25, userAgent: USER_AGENTS[1]! });
    await postSessions(t, sessions(200, now - 3_600_000), { perRequest: 25, userAgent: USER_AGENTS[1]! });
  });
  afterAll(() => closeBrowserOn(t, browser));

  it('turns red with the step at fault within seconds of a broken deploy, in light and dark', async () => {
    await page.goto(`${url}/?range=${SIX_HOURS}`);
    await page.getByRole('status').getByText('live').waitFor({ timeout: 10_000 });
    const res = await t.app.inject({ method: 'POST', url: '/api/deploys', payload: { version: 'v2.0-bad' } });
    expect(res.statusCode).toBe(201);
    const panel = page.locator('kpi-deploy');
    await panel.getByText('v2.0-bad').waitFor({ timeout: 10_000 });
    const random = seededRandom(100);
    const broken = Array.from({ length: 300 }, () => simulateSession(random, { now: Date.now(), breaks: parseBreaks(['user.user_staged=0.8']) }));
    await postSessions(t, broken, { perRequest: 25, userAgent: USER_AGENTS[1]! });
    await panel.getByText('Broken').waitFor({ timeout: 15_000 });
    expect(await panel.getAttribute('state')).toBe('broken');
    await panel.locator('li[data-key="new-user.step2"]').waitFor();
    expect(await panel.locator('li').first().getAttribute('data-key')).toBe('new-user.step2');
    // the tiles compare the dialogs since the deploy with the baseline
    await expect
      .poll(async () => page.locator('kpi-tile[data-kpi="newUserDropOff"] .change.deploy').textContent(), { timeout: 5000 })
      .toMatch(/baseline, since v2\.0-bad/);
    // the funnels compared: the dialogs since the deploy, exactly, against the baseline (not "–" until the next bucket)
    const compared = page.locator('kpi-compare[data-funnel="new-user"]');
    await compared.getByText('since v2.0-bad').waitFor({ timeout: 15_000 });
    await expect.poll(async () => compared.locator('tbody tr').nth(1).locator('td').nth(2).textContent(), { timeout: 10_000 }).toMatch(/^\s*\d+\.\d%\s*$/);
    // flagged by the verdict's always-valid test, not by a z-test re-run at every update
    await expect.poll(async () => compared.locator('tbody tr').nth(1).locator('td').nth(3).textContent(), { timeout: 10_000 }).toBe('broken ⚑');
    await page.screenshot({ path: join(SHOTS, 'dashboard-verdict.png'), fullPage: true });
    await page.emulateMedia({ colorScheme: 'dark' });
    try {
      await page.screenshot({ path: join(SHOTS, 'dashboard-verdict-dark.png'), fullPage: true });
    } finally {
      await page.emulateMedia({ colorScheme: 'light' });
    }
    const verdict = (await t.app.inject('/api/deploys/latest/verdict')).json() as { state: string };
    expect(verdict.state).toBe('broken');
  });
});

describe.skipIf(!available)('public view page in headless Chromium', () => {
  let t: TestApp;
  let browser: Browser;
  let page: Page;
  let url: string;

  beforeAll(async () => {
    ({ t, browser, page, url } = await openBrowserOn({ trustLoopback: false, publicView: true }, { width: 1280, height: 1000 }));
    // traffic in a settled hour (ended over an hour ago), and a few dialogs in another: withheld
    const random = seededRandom(160);
    const settled = Math.floor((Date.now() - 3 * 3_600_000) / 3_600_000) * 3_600_000 + 300_000;
    const sessions = (n: number, at: number) => Array.from({ length: n }, () => simulateSession(random, { now: at }));
    await postSessions(t, [...sessions(400, settled), ...sessions(8, settled - 3_600_000)], { perRequest: 25, userAgent: USER_AGENTS[1]! });
    await waitUntil(() => t.app.aggregates.status().counted >= 408, 20_000, 'every blob counted');
  });
  afterAll(() => closeBrowserOn(t, browser));

  it('shows the KPIs to a visitor who is not signed in, withholds small numbers, and says what is collected, in light and dark', async () => {
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    const response = await page.goto(`${url}/public`);
    expect(response?.headers()['content-security-policy']).toContain("script-src 'self'");
    const dialogs = page.locator('kpi-public .tile').first().locator('.value');
    await expect.poll(async () => dialogs.textContent(), { timeout: 10_000 }).toBe('400');
    // the hour with 8 dialogs is withheld: "—"
    await page.getByText('Hour by hour, the last 48 hours').waitFor();
    const rows = page.locator('kpi-public section[aria-label="Hour by hour, the last 48 hours"] tbody tr');
    expect(await rows.count()).toBe(2);
    expect(await rows.nth(1).locator('td').nth(1).textContent()).toBe('—');
    await page.getByText('What the sign-in dialog sends, and what is kept').waitFor();
    expect(await page.locator('kpi-public a[href="/public/privacy"]').count()).toBe(1);
    await page.screenshot({ path: join(SHOTS, 'public.png'), fullPage: true });
    await page.emulateMedia({ colorScheme: 'dark' });
    try {
      await page.goto(`${url}/public`);
      await expect.poll(async () => dialogs.textContent(), { timeout: 10_000 }).toBe('400');
      await page.screenshot({ path: join(SHOTS, 'public-dark.png'), fullPage: true });
    } finally {
      await page.emulateMedia({ colorScheme: 'light' });
    }
    expect(errors).toEqual([]);
  });
});
