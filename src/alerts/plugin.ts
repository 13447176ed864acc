/**
 * Server-side alerts: thresholds on tile KPIs and funnel-step conversions,
 * judged over a trailing window as the aggregate changes, announced to a
 * webhook once per transition.
 *
 * - `GET /api/thresholds` → `{thresholds}` in force: the stored set, else `KPI_THRESHOLDS`
 * - `PUT /api/thresholds` `{thresholds}` replaces the stored set (every key and bound checked)
 * - `GET /api/alerts` → where each watched key stands (`AlertsBody`)
 *
 * All three are guarded like reads (a cookie session's PUT also needs its
 * CSRF token). The stored set and the standing breaches live in
 * `<KPI_DB>_alerts`; every instance polls it, so a change made on one is in
 * force on all within {@link THRESHOLDS_POLL_MS}.
 *
 * Judging follows the aggregate (at most every {@link EVALUATE_THROTTLE_MS})
 * and a timer (the window slides without new blobs), from the moment the
 * aggregate has caught up with the feed: before that (at start, after a
 * restart with a backlog) its window may lack blobs, and it would page for a
 * drop that is not there. Once caught up, a feed being retried still counts:
 * a store that stopped taking blobs is worth an alert.
 *
 * Every instance judges (so `GET /api/alerts` answers the same everywhere),
 * but only the holder of the aggregate follower lease (`app.leadership`)
 * posts to the webhook and saves the standing breaches: one post per
 * transition, however many instances run. A new holder starts as a
 * restarted instance does: from the breaches the previous holder saved, once
 * its own aggregate has caught up.
 */
import fp from 'fastify-plugin';
import { Ajv } from 'ajv';
import type { FastifyInstance } from 'fastify';
import { asyncScheduler, interval, merge, observeOn, skip, Subject, throttleTime } from 'rxjs';
import { ConfigError, parseThresholds, type Config } from '../config/config.js';

import { errorResponseSchema, HttpError } from '../http/errors.js';
import { AlertsDb, watchThresholds, type LatchedBreach, type StoredThresholds } from './alerts-db.js';
import { initialWatch, judge, release, type Transition, type Watch } from './hysteresis.js';
import { byKeyOrder, checkThresholds, InvalidThresholdsError } from './thresholds.js';
import type { AlertEvent, AlertsBody, ThresholdKey, Thresholds, ThresholdsBody, WebhookEvent } from './types.js';
import { watchedValue } from './values.js';
import { isWebhookUrl, WebhookSender } from './webhook.js';
import { windowEnd } from '../contract/kpis.js';

/** Another instance's change of thresholds is in force here within this long. */
export const THRESHOLDS_POLL_MS = 30_000;
/** Judge at most this often on aggregate changes. */
export const EVALUATE_THROTTLE_MS = 5_000;
/**
 * Judge at least this often: the window slides without new blobs, and an
 * aggregate that just turned live may have nothing new to announce. One
 * judgement reads a window's bucket totals: far below a millisecond.
 */
export const EVALUATE_EVERY_MS = 5_000;

export interface Alerts {
  /** The thresholds in force. */
  thresholds(): Thresholds;
  /** Where each watched key stands. */
  list(): AlertsBody;
  /** Rounds of judging done so far (each judged every watched key over the window). */
  rounds(): number;
  /** Sends an event to the alert webhook, if one is configured (never waits). */
  notify(event: WebhookEvent): void;
}

declare module 'fastify' {
  interface FastifyInstance {
    alerts: Alerts;
  }
}

const boundsSchema = {
  type: 'object',
  properties: { min: { type: 'number' }, max: { type: 'number' } },
} as const;

const thresholdsSchema = { type: 'object', additionalProperties: boundsSchema } as const;

const thresholdsBodySchema = {
  type: 'object',
  required: ['thresholds'],
  additionalProperties: false,
  properties: { thresholds: thresholdsSchema },
} as const;

const alertStateSchema = {
  type: 'object',
  required: ['key', 'state', 'value', 'bound', 'limit', 'since'],
  properties: {
    key: { type: 'string' },
    state: { type: 'string', enum: ['ok', 'breached', 'unknown'] },
    value: { type: ['number', 'null'] },
    bound: { type: ['string', 'null'] },
    limit: { type: ['number', 'null'] },
    since: { type: 'integer' },
  },
} as const;

const alertsBodySchema = {
  type: 'object',
  required: ['windowMs', 'alerts', 'webhook'],
  properties: {
    windowMs: { type: 'integer' },
    alerts: { type: 'array', items: alertStateSchema },
    webhook: {
      type: ['object', 'null'],
      properties: { queued: { type: 'integer' }, delivered: { type: 'integer' }, failed: { type: 'integer' }, dropped: { type: 'integer' } },
    },
  },
} as const;

const errors = { 401: errorResponseSchema, 403: errorResponseSchema, 503: errorResponseSchema };

/**
 * The PUT body is checked without the app's type coercion: a bound of `null`
 * or `"0.7"` is a mistake to point out, not a 0 or a 0.7 to guess.
 */
const strictAjv = new Ajv({ allErrors: false, coerceTypes: false, removeAdditional: false, useDefaults: false, strict: true });

async function alerts(app: FastifyInstance, { config }: { config: Config }): Promise<void> {
  const defaults = parseThresholds(config.thresholds);
  const windowMs = Math.round(config.alertWindowMinutes * 60_000);
  let webhook: WebhookSender | undefined;
  if (config.alertWebhookUrl !== undefined) {
    if (!isWebhookUrl(config.alertWebhookUrl)) throw new ConfigError('invalid configuration: KPI_ALERT_WEBHOOK_URL must be an http: or https: URL');
    webhook = new WebhookSender({ url: config.alertWebhookUrl, log: app.log });
  }

  const alertsDb = new AlertsDb(app.store, `${config.dbName}_alerts`, app.log);
  const stored = await alertsDb.loadThresholds();
  const remembered = await alertsDb.loadBreaches();
  let inForce: Thresholds = stored?.thresholds ?? defaults;

  const startedAt = Date.now();
  const watches = new Map<ThresholdKey, Watch>();
  for (const key of Object.keys(inForce) as ThresholdKey[]) watches.set(key, initialWatch(key, startedAt, remembered[key] ?? null));
  // A breach whose threshold went away while kpi-live was down: nobody watches it any more.
  const releasedAtStart = (Object.entries(remembered) as [ThresholdKey, LatchedBreach][])
    .filter(([key]) => !inForce[key])
    .flatMap(([key, breach]) => release(initialWatch(key, startedAt, breach), startedAt));

  // Standing breaches are saved one write at a time, the latest view winning.
  let savedBreaches = JSON.stringify(remembered);
  let saving: Promise<void> = Promise.resolve();
  const saveBreaches = () => {
    const breaches: Partial<Record<ThresholdKey, LatchedBreach>> = {};
    for (const w of watches.values()) if (w.latched !== null) breaches[w.key] = { bound: w.latched, limit: w.limit ?? 0 };
    const text = JSON.stringify(breaches);
    if (text === savedBreaches) return;
    savedBreaches = text;
    saving = saving
      .then(() => alertsDb.saveBreaches(breaches))
      .catch((err: Error) => app.log.warn({ err: err.message }, 'could not save the standing alert breaches; a restart may announce them again'));
  };

  const announce = (transitions: Transition[]) => {
    // a standby judges for its own /api/alerts; the lease holder speaks for all
    if (!app.leadership.isLeader()) return;
    for (const t of transitions) {
      const event: AlertEvent = { ...t, windowMs, service: 'kpi-live' };
      app.log[t.kind === 'breached' ? 'warn' : 'info'](
        { key: t.key, kind: t.kind, value: t.value, bound: t.bound, limit: t.limit, windowMs },
        t.kind === 'breached' ? 'alert threshold breached' : 'alert cleared',
      );
      webhook?.send(event);
    }
    if (transitions.length > 0) saveBreaches();
  };

  // Until the aggregate has caught up once, its window may be missing blobs.
  let caughtUp = false;
  // A new lease holder takes over the standing breaches first.
  let takingOver = false;
  let rounds = 0;
  /** Judges every watched key over the trailing window ending now. */
  const evaluate = (now = Date.now()) => {
    const phase = app.aggregates.status().phase;
    if (takingOver) return;
    if (phase === 'live') caughtUp = true;
    if (!caughtUp || phase === 'failed' || phase === 'stopped' || watches.size === 0) return;
    const to = windowEnd(now);
    const kpis = app.aggregates.kpis({ from: to - windowMs, to, bucket: '1d' }).series[0]?.total;
    if (!kpis) return;
    const transitions: Transition[] = [];
    for (const [key, watch] of watches) {
      const watched = watchedValue(key, kpis);
      const value = watched && watched.support >= config.alertMinDialogs ? watched.value : null;
      const judged = judge(watch, inForce[key] ?? {}, config.alertHysteresis, value, now);
      watches.set(key, judged.watch);
      transitions.push(...judged.transitions);
    }
    rounds++;
    announce(transitions);
  };

  const evaluateNow = new Subject<void>();
  const replaceThresholds = (next: Thresholds, source: string) => {
    const now = Date.now();
    const released: Transition[] = [];
    for (const [key, watch] of watches) {
      if (next[key]) continue;
      released.push(...release(watch, now));
      watches.delete(key);
    }
    for (const key of Object.keys(next) as ThresholdKey[]) if (!watches.has(key)) watches.set(key, initialWatch(key, now));
    inForce = next;
    app.log.info({ keys: Object.keys(next), source }, 'alert thresholds in force');
    announce(released);
    evaluateNow.next();
  };

  announce(releasedAtStart);

  const poller = watchThresholds(alertsDb, stored?.rev, THRESHOLDS_POLL_MS, (s: StoredThresholds | undefined) =>
    replaceThresholds(s?.thresholds ?? defaults, s ? 'stored' : 'configured'),
  );

  const subscription = merge(
    app.aggregates.changes$.pipe(throttleTime(EVALUATE_THROTTLE_MS, asyncScheduler, { leading: true, trailing: true })),
    interval(EVALUATE_EVERY_MS),
    evaluateNow,
  )
    // Off the aggregate's path: changes$ emits while a batch is being applied.
    .pipe(observeOn(asyncScheduler))
    .subscribe(() => {
      try {
        evaluate();
      } catch (err) {
        app.log.error({ err }, 'alert evaluation failed; the next one retries');
      }
    });

  // Becoming the lease holder: start from what the previous holder saved, as a restart does.
  const leadership = app.leadership.leader$.pipe(skip(1)).subscribe((leader) => {
    if (!leader) return;
    takingOver = true;
    caughtUp = false;
    alertsDb
      .loadBreaches()
      .then((saved) => {
        const at = Date.now();
        for (const key of watches.keys()) watches.set(key, initialWatch(key, at, saved[key] ?? null));
        savedBreaches = JSON.stringify(saved);
      })
      .catch((err: Error) => app.log.warn({ err: err.message }, "could not read the standing alert breaches; judging from this instance's own"))
      .finally(() => (takingOver = false));
  });

  app.addHook('onClose', async () => {
    leadership.unsubscribe();
    subscription.unsubscribe();
    poller.stop();
    await webhook?.close();
  });
  // The last save of breaches must reach the store before it closes.
  app.store.beforeClose(() => saving);

  app.log.info(
    { keys: Object.keys(inForce), source: stored ? 'stored' : 'configured', windowMs, webhook: webhook?.origin ?? null },
    webhook ? 'alerts on, with a webhook' : 'alerts on, dashboard only (no KPI_ALERT_WEBHOOK_URL)',
  );

  const list = (): AlertsBody => ({
    windowMs,
    alerts: [...watches.values()].sort((a, b) => byKeyOrder(a.key, b.key)).map(({ latched: _latched, ...state }) => state),
    webhook: webhook?.status ?? null,
  });
  app.decorate('alerts', { thresholds: () => inForce, list, rounds: () => rounds, notify: (event: WebhookEvent) => webhook?.send(event) } satisfies Alerts);

  await app.register(async (api) => {
    api.addHook('onRequest', app.auth.requireReader);

    api.get('/api/thresholds', { schema: { response: { 200: { type: 'object', properties: { thresholds: thresholdsSchema } }, ...errors } } }, async () => ({
      thresholds: inForce,
    }));

    api.put<{ Body: ThresholdsBody }>(
      '/api/thresholds',
      {
        schema: {
          body: thresholdsBodySchema,
          response: { 200: { type: 'object', properties: { thresholds: thresholdsSchema } }, 400: errorResponseSchema, ...errors },
        },
        validatorCompiler: ({ schema }) => strictAjv.compile(schema),
      },
      async (request) => {
        let thresholds: Thresholds;
        try {
          thresholds = checkThresholds(request.body.thresholds, 'body.thresholds');
        } catch (err) {
          if (err instanceof InvalidThresholdsError) throw new HttpError(400, err.message, err.field);
          throw err;
        }
        const rev = await alertsDb.saveThresholds(thresholds);
        poller.seen(rev);
        request.log.info({ keys: Object.keys(thresholds), by: app.auth.identify(request)?.kind }, 'alert thresholds stored');
        replaceThresholds(thresholds, 'stored');
        return { thresholds };
      },
    );

    api.get('/api/alerts', { schema: { response: { 200: alertsBodySchema, ...errors } } }, async () => list());
  });
}

export default fp(alerts, { name: 'kpi-alerts', dependencies: ['kpi-auth', 'kpi-store', 'kpi-aggregates'], fastify: '5.x' });
