// @vitest-environment happy-dom
/**
 * The whole dashboard against a fake live socket and a table of HTTP answers:
 * what it subscribes to, what it fetches and when, sign-in, thresholds and
 * alert states, and that it degrades when the service lacks a route.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { KpiAnswer, Kpis } from '../../src/contract/kpis.js';
import type { AlertsBody } from '../../src/alerts/types.js';
import { navigation, resetSession } from '../../web/src/api.js';
import '../../web/src/kpi-dashboard.js';
import type { KpiDashboard } from '../../web/src/kpi-dashboard.js';
import type { KpiThresholds } from '../../web/src/kpi-thresholds.js';
import type { KpiTile } from '../../web/src/kpi-tile.js';
import { formatValue, hhmm } from '../../web/src/model.js';
import { FakeWebSocket, setVisibility, stubFetch, type Route } from './fakes.js';
import { NEW_USER_STEPS, RESET_STEPS } from '../../src/contract/kpis.js';
import { funnelSteps } from '../harness/kpi-fixtures.js';

const HOUR = 3_600_000;

/** KPIs of a population with these new-user and password-reset funnel counts. */
function kpis(newUser: number[], reset: number[] = [0, 0, 0], extra: Partial<Kpis> = {}): Kpis {
  const dialogs = newUser[0]! + reset[0]! + 10;
  return {
    sampled: false,
    dialogs,
    dialogsEstimate: dialogs,
    assertions: newUser[3]!,
    newUsers: newUser[3]!,
    newUsersEstimate: newUser[3]!,
    sitesLoggedIn: { median: 2, mean: 2, p90: 3 },
    newUserFunnel: funnelSteps(newUser, NEW_USER_STEPS),
    passwordResetFunnel: funnelSteps(reset, RESET_STEPS),
    progress: [],
    passwordResetSuccess: reset[0]! > 0 ? reset[2]! / reset[0]! : null,
    additionalEmailShare: 0.1,
    bounceRate: 0.5,
    newUserBounce: 0.2,
    errorScreenRate: 0.01,
    outcomes: { bounce: 0, fallback: 0, idp: 0, assertion: 0, fail: 0 },
    timeToLoginMs: { median: 1000, p90: 2000, count: 1 },
    newUserStepTimesMs: [],
    ...extra,
  };
}

function answer(from: number, to: number, series: [string, Kpis][], segment: KpiAnswer['segment'] = null): KpiAnswer {
  return {
    from,
    to,
    bucket: '10m',
    bucketMs: 600_000,
    segment,
    watermark: to,
    series: series.map(([name, total]) => ({ segment: name, total, points: [{ start: from, end: from + 600_000, kpis: total }] })),
  };
}

const NOW = new Date(2026, 10, 23, 12, 34).getTime();
const TO = Math.ceil((NOW + 1) / 600_000) * 600_000;

let assigned: string[];

async function mount(search: string, routes: Record<string, Route>) {
  history.replaceState(null, '', `/${search}`);
  const fetches = stubFetch(routes);
  const dashboard = document.createElement('kpi-dashboard') as KpiDashboard;
  document.body.append(dashboard);
  await dashboard.updateComplete;
  const socket = FakeWebSocket.instances.at(-1)!;
  socket.open();
  return { dashboard, socket, ...fetches };
}

const root = (d: KpiDashboard) => d.shadowRoot!;
const tile = (d: KpiDashboard, id: string) => root(d).querySelector<KpiTile>(`kpi-tile[data-kpi="${id}"]`)!;
const inTile = (d: KpiDashboard, id: string, selector: string) => tile(d, id).shadowRoot!.querySelector(selector)?.textContent?.replace(/\s+/g, ' ').trim();
const callsTo = (calls: { path: string; method: string }[], path: string) => calls.filter((c) => c.path.split('?')[0] === path);

/** Flushes timers up to `ms` and whatever they started. */
const advance = async (ms: number) => {
  await vi.advanceTimersByTimeAsync(ms);
};

beforeEach(() => {
  vi.useFakeTimers({ now: NOW, toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
  FakeWebSocket.instances = [];
  vi.stubGlobal('WebSocket', FakeWebSocket);
  // no canvas here: the chart is not drawn (its text alternative is tested with the chart)
  vi.stubGlobal('requestAnimationFrame', () => 0);
  resetSession();
  assigned = [];
  vi.spyOn(navigation, 'assign').mockImplementation((url) => void assigned.push(url));
});

afterEach(() => {
  document.body.replaceChildren();
  setVisibility('visible');
  vi.useRealTimers();
  vi.unstubAllGlobals();
  vi.restoreAllMocks();
});

const loopback = { '/api/session': { status: 200, body: { kind: 'loopback' } } };

describe('<kpi-dashboard>', () => {
  it('says hello with what it shows and no token; split, it asks for the top 8 values and Other', async () => {
    const { socket } = await mount('?range=3600000&segment=os', loopback);
    expect(socket.sent).toEqual([{ type: 'hello', subscribe: { rangeMs: HOUR, segment: 'os', top: 8 } }]);
    expect(localStorage.length).toBe(0);
  });

  it('subscribes to a fixed window for a custom range from the URL, and says when it is in the past', async () => {
    const [from, to] = [TO - 30 * HOUR, TO - 24 * HOUR];
    const { dashboard, socket } = await mount(`?from=${from}&to=${to}`, loopback);
    expect(socket.sent[0]).toEqual({ type: 'hello', subscribe: { rangeMs: 6 * HOUR, from } });
    socket.deliver({ type: 'snapshot', epoch: 'e', version: 1, kpis: answer(from, to, [['all', kpis([10, 8, 6, 5])]]), deploys: [] });
    await dashboard.updateComplete;
    expect(root(dashboard).querySelector('[role="status"]')!.textContent).toBe('past window');
  });

  it('sends the user to sign in when the socket is refused for want of a session (4401)', async () => {
    history.replaceState(null, '', '/?range=3600000');
    const { dashboard, socket } = await mount('?range=3600000', loopback);
    socket.closeFromServer(4401);
    await dashboard.updateComplete;
    expect(assigned).toEqual(['/login?next=%2F%3Frange%3D3600000']);
    expect(root(dashboard).querySelector('[role="status"]')!.textContent).toBe('signed out');
    // no reconnecting
    await advance(30_000);
    expect(FakeWebSocket.instances).toHaveLength(1);
  });

  it('degrades without /api/thresholds, /api/alerts and /api/ingest-stats: thresholds of /api/settings, no editing, no badges, no footer', async () => {
    const { dashboard, socket, calls } = await mount('?range=3600000', {
      ...loopback,
      '/api/settings': { status: 200, body: { thresholds: { bounceRate: { max: 0.4 } } } },
    });
    socket.deliver({ type: 'snapshot', epoch: 'e', version: 1, kpis: answer(TO - HOUR, TO, [['all', kpis([10, 8, 6, 5])]]), deploys: [] });
    await advance(0);
    await dashboard.updateComplete;
    expect(tile(dashboard, 'bounceRate').hasAttribute('breached')).toBe(true);
    expect(inTile(dashboard, 'bounceRate', '.breach')).toBe('⚠ Outside threshold: above max 40.0%');
    expect(tile(dashboard, 'bounceRate').shadowRoot!.querySelector('.badge')).toBeNull();
    expect(root(dashboard).querySelector('button.edit-thresholds')).toBeNull();
    expect(root(dashboard).querySelector('footer')).toBeNull();
    expect(callsTo(calls, '/api/thresholds')).toHaveLength(1);
    expect(callsTo(calls, '/api/settings')).toHaveLength(1);
  });

  it('links the public page from its footer when the service has a public view, asking for the settings once', async () => {
    const { dashboard, socket, calls } = await mount('?range=3600000', {
      ...loopback,
      '/api/settings': { status: 200, body: { thresholds: {}, publicView: true } },
    });
    socket.deliver({ type: 'snapshot', epoch: 'e', version: 1, kpis: answer(TO - HOUR, TO, [['all', kpis([10, 8, 6, 5])]]), deploys: [] });
    await advance(0);
    await dashboard.updateComplete;
    expect(root(dashboard).querySelector('footer a[href="/public"]')!.textContent).toContain('What is collected and kept');
    expect(callsTo(calls, '/api/settings')).toHaveLength(1);
  });

  it('says what it could not load, keeps showing the rest, and clears the note once the service answers again', async () => {
    const routes = {
      ...loopback,
      '/api/alerts': { status: 503, body: { message: 'the store is unavailable; retry later' } } as Route,
    };
    const { dashboard, socket } = await mount('?range=3600000', routes);
    socket.deliver({ type: 'snapshot', epoch: 'e', version: 1, kpis: answer(TO - HOUR, TO, [['all', kpis([10, 8, 6, 5])]]), deploys: [] });
    await advance(0);
    await dashboard.updateComplete;
    const note = () => root(dashboard).querySelector('.fetch-errors')?.textContent?.replace(/\s+/g, ' ').trim();
    expect(note()).toMatch(/^Could not load the alerts \(\/api\/alerts: 503\); showing the last numbers, retrying\.$/);
    expect(tile(dashboard, 'bounceRate').value).not.toBe('–');
    routes['/api/alerts'] = { status: 200, body: { alerts: [] } };
    await advance(15_000);
    await dashboard.updateComplete;
    expect(note()).toBeUndefined();
  });

  it('shows who is signed in with a sign-out form, alert badges on tiles and funnel steps, and the opt-outs in the footer', async () => {
    const since = NOW - 20 * 60_000;
    const alerts: AlertsBody = {
      windowMs: HOUR,
      alerts: [
        { key: 'bounceRate', state: 'breached', value: 0.8, bound: 'max', limit: 0.7, since },
        { key: 'new-user.step2', state: 'breached', value: 0.5, bound: 'min', limit: 0.9, since },
        { key: 'newUsers', state: 'ok', value: 50, bound: null, limit: null, since },
      ],
    };
    const { dashboard, socket } = await mount('?range=3600000', {
      '/api/session': { status: 200, body: { kind: 'session', user: 'alice', csrfToken: 'c1', expiresAt: NOW + HOUR } },
      '/api/thresholds': { status: 200, body: { thresholds: { 'new-user.step2': { min: 0.9 } } } },
      '/api/alerts': { status: 200, body: alerts },
      '/api/ingest-stats': { status: 200, body: { since: NOW - 2 * HOUR, accepted: 100, optedOut: 7, sampledOut: 0, rejected: 1 } },
    });
    socket.deliver({ type: 'snapshot', epoch: 'e', version: 1, kpis: answer(TO - HOUR, TO, [['all', kpis([10, 8, 6, 5])]]), deploys: [] });
    await advance(0);
    await dashboard.updateComplete;
    const account = root(dashboard).querySelector('.account')!;
    expect(account.textContent!.replace(/\s+/g, ' ').trim()).toBe('Signed in as alice Sign out');
    const form = account.querySelector('form')!;
    expect([form.getAttribute('method'), form.getAttribute('action'), form.querySelector('button')!.type]).toEqual(['post', '/logout', 'submit']);
    expect(inTile(dashboard, 'bounceRate', '.badge')).toBe(`alert since ${hhmm(since)}`);
    expect(tile(dashboard, 'newUsers').shadowRoot!.querySelector('.badge')).toBeNull();
    const step2 = root(dashboard).querySelector('kpi-funnel[data-funnel="new-user"]')!.shadowRoot!.querySelector('.step[data-step="2"]')!;
    expect(step2.classList.contains('breached')).toBe(true);
    expect(step2.querySelector('.breach')!.textContent!.replace(/\s+/g, ' ').trim()).toBe(`⚠ 80.0% from step 1: below min 90.0% alert since ${hhmm(since)}`);
    expect(root(dashboard).querySelector('footer')!.textContent!.replace(/\s+/g, ' ').trim()).toBe(
      '7 requests not stored (Do Not Track / GPC opt-out) since 10:34',
    );
    expect(root(dashboard).querySelector('button.edit-thresholds')!.textContent).toBe('Thresholds…');
  });

  it('edits thresholds in a dialog, saves them with PUT and the CSRF token, and colours tiles from the answer', async () => {
    let stored = {};
    const { dashboard, socket, calls } = await mount('?range=3600000', {
      '/api/session': { status: 200, body: { kind: 'session', user: 'alice', csrfToken: 'csrf-abc' } },
      '/api/thresholds': () => ({ status: 200, body: { thresholds: stored } }),
      'PUT /api/thresholds': (call) => {
        stored = (call.body as { thresholds: object }).thresholds;
        return { status: 200, body: { thresholds: stored } };
      },
      '/api/alerts': { status: 200, body: { windowMs: HOUR, alerts: [] } },
    });
    socket.deliver({ type: 'snapshot', epoch: 'e', version: 1, kpis: answer(TO - HOUR, TO, [['all', kpis([10, 8, 6, 5])]]), deploys: [] });
    await advance(0);
    await dashboard.updateComplete;
    expect(tile(dashboard, 'errorRate').hasAttribute('breached')).toBe(false);
    root(dashboard).querySelector<HTMLButtonElement>('button.edit-thresholds')!.click();
    const editor = root(dashboard).querySelector<KpiThresholds>('kpi-thresholds')!;
    await vi.waitFor(() => expect(editor.isOpen).toBe(true));
    const max = editor.shadowRoot!.querySelector<HTMLInputElement>('tr[data-key="errorRate"] input[id^="max-"]')!;
    max.value = '0.5';
    max.dispatchEvent(new Event('input'));
    editor.shadowRoot!.querySelector('form')!.requestSubmit();
    await vi.waitFor(() => expect(editor.isOpen).toBe(false));
    const put = calls.find((c) => c.method === 'PUT')!;
    expect(put.headers['x-csrf-token']).toBe('csrf-abc');
    expect(put.body).toEqual({ thresholds: { errorRate: { max: 0.005 } } });
    await dashboard.updateComplete;
    expect(tile(dashboard, 'errorRate').hasAttribute('breached')).toBe(true);
    expect(inTile(dashboard, 'errorRate', '.breach')).toBe('⚠ Outside threshold: above max 0.5%');
  });

  it('fetches the previous period, the hour before a deploy and the comparison once per key, not per render, and both funnels are compared', async () => {
    const { dashboard, socket, calls } = await mount('?range=3600000', loopback);
    const now = answer(TO - HOUR, TO, [['all', kpis([10, 8, 6, 5], [4, 3, 2])]]);
    socket.deliver({ type: 'snapshot', epoch: 'e', version: 1, kpis: now, deploys: [] });
    await advance(0);
    for (let v = 2; v < 6; v++) {
      socket.deliver({ type: 'delta', epoch: 'e', version: v, kpis: now });
      await dashboard.updateComplete;
    }
    const kpiCalls = () => callsTo(calls, '/api/kpis').map((c) => c.path);
    expect(kpiCalls()).toEqual([
      `/api/kpis?from=${TO - 2 * HOUR}&to=${TO - HOUR}&bucket=10m`,
      `/api/kpis?from=${NOW - 48 * HOUR}&to=${NOW - 24 * HOUR}&bucket=1d`,
      `/api/kpis?from=${NOW - 24 * HOUR}&to=${NOW + 1}&bucket=1d`,
    ]);
    const deploy = { id: 'd1', version: 'v2', at: TO - 30 * 60_000 };
    socket.deliver({ type: 'deploy', deploy });
    await advance(0);
    await dashboard.updateComplete;
    socket.deliver({ type: 'delta', epoch: 'e', version: 7, kpis: now });
    await advance(0);
    expect(kpiCalls().slice(3)).toEqual([
      `/api/kpis?from=${deploy.at - HOUR}&to=${deploy.at}&bucket=10m`,
      // as long before the deploy as there is after it (24 min), the two windows apart
      `/api/kpis?from=${deploy.at - 24 * 60_000}&to=${deploy.at}&bucket=1d`,
      `/api/kpis?from=${deploy.at}&to=${NOW + 1}&bucket=1d`,
    ]);
    expect([...root(dashboard).querySelectorAll('kpi-compare')].map((c) => c.getAttribute('data-funnel'))).toEqual(['new-user', 'password-reset']);
    // the comparison is refreshed every 10 s
    const before = kpiCalls().length;
    await advance(10_000);
    expect(kpiCalls().length).toBe(before + 2);
  });

  it('polls alerts every 15 s while visible, not while hidden, and nothing once it has left the page', async () => {
    const { dashboard, calls } = await mount('?range=3600000', { ...loopback, '/api/alerts': { status: 200, body: { windowMs: HOUR, alerts: [] } } });
    await advance(0);
    const polls = () => callsTo(calls, '/api/alerts').length;
    expect(polls()).toBe(1);
    await advance(45_000);
    expect(polls()).toBe(4);
    setVisibility('hidden');
    await advance(60_000);
    expect(polls()).toBe(4);
    setVisibility('visible');
    await advance(0);
    expect(polls()).toBe(5);
    dashboard.remove();
    const total = calls.length;
    await advance(120_000);
    expect(calls.length).toBe(total);
    expect(FakeWebSocket.instances.at(-1)!.readyState).toBe(FakeWebSocket.CLOSED);
  });

  it('zooms the chart by fetching the selected sub-range at a finer bucket, and goes back with Reset zoom', async () => {
    const { dashboard, socket, calls } = await mount('?range=604800000&segment=browser', loopback);
    const week = answer(TO - 7 * 24 * HOUR, TO, [['Firefox', kpis([10, 8, 6, 5])]], 'browser');
    socket.deliver({ type: 'snapshot', epoch: 'e', version: 1, kpis: { ...week, bucket: '1h', bucketMs: HOUR }, deploys: [] });
    await advance(0);
    const chart = root(dashboard).querySelector('kpi-chart')!;
    const [from, to] = [TO - 5 * HOUR - 7 * 60_000, TO - 2 * HOUR];
    chart.dispatchEvent(new CustomEvent('zoom', { detail: { from, to }, bubbles: true, composed: true }));
    await advance(0);
    await dashboard.updateComplete;
    const zoomFrom = Math.floor(from / 600_000) * 600_000;
    expect(callsTo(calls, '/api/kpis').at(-1)!.path).toBe(`/api/kpis?from=${zoomFrom}&to=${to}&bucket=10m&segment=browser&top=8`);
    expect(root(dashboard).querySelector('.zoom-note')!.textContent).toMatch(/^Zoomed to .*, 10-minute points \(not live\)$/);
    const reset = root(dashboard).querySelector<HTMLButtonElement>('button.reset-zoom')!;
    expect(reset.disabled).toBe(false);
    reset.click();
    await dashboard.updateComplete;
    expect(dashboard.zoom).toBeUndefined();
    expect((chart as unknown as { answer: KpiAnswer }).answer.bucket).toBe('1h');
    // by keyboard: Zoom in halves the window around its middle
    root(dashboard).querySelector<HTMLButtonElement>('.zoom button')!.click();
    await dashboard.updateComplete;
    expect(dashboard.zoom).toEqual({ from: TO - 126 * HOUR, to: TO - 42 * HOUR });
  });

  it('shows the whole population in the funnels and tiles when split', async () => {
    const { dashboard, socket } = await mount('?range=3600000&segment=os', loopback);
    socket.deliver({
      type: 'snapshot',
      epoch: 'e',
      version: 1,
      kpis: {
        ...answer(
          TO - HOUR,
          TO,
          [
            ['Windows 7', kpis([10, 8, 6, 5])],
            ['Other', kpis([30, 20, 10, 5])],
          ],
          'os',
        ),
        overall: kpis([40, 28, 16, 10]),
      },
      deploys: [],
    });
    await dashboard.updateComplete;
    const counts = [...root(dashboard).querySelector('kpi-funnel[data-funnel="new-user"]')!.shadowRoot!.querySelectorAll('.count')].map((c) => c.textContent);
    expect(counts).toEqual(['40', '28', '16', '10']);
    // split, tiles show the service's exact overall
    expect(inTile(dashboard, 'newUsers', '.value')).toBe(formatValue(kpis([40, 28, 16, 10]).newUsersEstimate, 'count'));
    expect(inTile(dashboard, 'newUsers', '.value')).not.toBe('–');
  });

  it('shows sampled counts on tiles as estimates', async () => {
    const { dashboard, socket } = await mount('?range=3600000', loopback);
    socket.deliver({
      type: 'snapshot',
      epoch: 'e',
      version: 2,
      kpis: answer(TO - HOUR, TO, [['all', kpis([10, 8, 6, 5], [0, 0, 0], { sampled: true, newUsersEstimate: 52.5 })]]),
      deploys: [],
    });
    await dashboard.updateComplete;
    await tile(dashboard, 'newUsers').updateComplete;
    expect(inTile(dashboard, 'newUsers', '.value')).toBe('≈ 53');
    expect(inTile(dashboard, 'newUsers', '.estimate-note')).toBe('estimate');
    // rates are not counts: no ≈ on them
    expect(inTile(dashboard, 'bounceRate', '.value')).toBe('50.0%');
  });

  it('gives every control an accessible name, reachable by keyboard (no positive tabindex)', async () => {
    const { dashboard, socket } = await mount('?range=3600000', {
      '/api/session': { status: 200, body: { kind: 'session', user: 'alice', csrfToken: 'c' } },
      '/api/thresholds': { status: 200, body: { thresholds: {} } },
    });
    socket.deliver({ type: 'snapshot', epoch: 'e', version: 1, kpis: answer(TO - HOUR, TO, [['all', kpis([10, 8, 6, 5])]]), deploys: [] });
    await advance(0);
    await dashboard.updateComplete;
    root(dashboard).querySelector<HTMLButtonElement>('kpi-range')!.shadowRoot!.querySelector<HTMLButtonElement>('button.custom')!.click();
    await advance(0);
    const controls: { root: ShadowRoot; el: HTMLElement }[] = [];
    const walk = (r: ShadowRoot) => {
      for (const el of r.querySelectorAll<HTMLElement>('button, input, select, textarea, [tabindex]')) controls.push({ root: r, el });
      for (const host of r.querySelectorAll('*')) if (host.shadowRoot) walk(host.shadowRoot);
    };
    walk(root(dashboard));
    expect(controls.length).toBeGreaterThan(20);
    const nameOf = ({ root: r, el }: { root: ShadowRoot; el: HTMLElement }) =>
      el.getAttribute('aria-label') ??
      (el.id ? r.querySelector(`label[for="${el.id}"]`)?.textContent : undefined) ??
      el.closest('label')?.textContent ??
      (el.tagName === 'BUTTON' ? el.textContent : undefined);
    for (const control of controls) {
      expect(nameOf(control)?.trim(), control.el.outerHTML.slice(0, 80)).toBeTruthy();
      expect(Number(control.el.getAttribute('tabindex') ?? 0)).toBeLessThanOrEqual(0);
    }
  });
});
