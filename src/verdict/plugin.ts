/**
 * Verdicts on deploys, from the aggregate's arrival buckets and a baseline
 * (judge.ts, baseline.ts):
 *
 * - `GET /api/deploys/:id/verdict` (`:id` a marker's id, or `latest`),
 *   guarded like the other reads: the verdict now. 404 for an unknown
 *   deploy or one whose arrivals are no longer kept (7 days); 503 with
 *   `Retry-After` while the aggregate is not live (catching up after a
 *   start, or retrying), when a verdict would judge part of the data.
 *
 * - `GET /api/deploys/:id/arrivals`: what the verdict compares, whole: the
 *   KPIs (both funnels, every tile) of the dialogs that arrived since the
 *   deploy and of its baseline, with the baseline's windows.
 *
 * `app.verdicts` gives the same to the stream (the latest deploy's verdict
 * while it is recent, as it changes), and sends the alert webhook a
 * `deploy-broken` event when a deploy's verdict first turns broken (from
 * the lease holder, once per deploy and process).
 */
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config/config.js';
import type { Deploy } from '../deploys/types.js';
import { BehaviorSubject, asyncScheduler, interval, merge, throttleTime, type Observable } from 'rxjs';
import type { DeployBrokenEvent } from '../alerts/types.js';
import { ARRIVAL_WINDOW_MS, ARRIVALS_KEPT_MS, VERDICT_STATES, type DeployVerdict } from '../contract/verdict.js';
import { errorResponseSchema, HttpError, sendUnavailable } from '../http/errors.js';
import { kpisSchema } from '../contract/answer-schemas.js';
import { hoursBeforeWindow, MIN_POOLED_DIALOGS, sameHoursWindows } from './baseline.js';
import { judgeDeploy } from './judge.js';

export interface Verdicts {
  /** The verdict on a deploy now. */
  of(deploy: Deploy, now?: number): DeployVerdict;
  /** The latest deploy marker (by time, not in the future), if any. */
  latest(now?: number): Deploy | undefined;
  /** The latest deploy's verdict as last judged, while it is recent (ARRIVAL_WINDOW_MS); null otherwise. */
  current(): DeployVerdict | null;
  /** `current()` at once, then each time its state, faults or arrivals change. */
  readonly current$: Observable<DeployVerdict | null>;
}

declare module 'fastify' {
  interface FastifyInstance {
    verdicts: Verdicts;
  }
}

/** How long a client waits before asking again while the aggregate catches up. */
const CATCHING_UP_RETRY_SECONDS = 5;
/** The latest deploy is judged again at most this often as blobs arrive, ms, and at least this often as time passes. */
const JUDGE_THROTTLE_MS = 1000;
const JUDGE_EVERY_MS = 10_000;

/** The same verdict for the stream: state, faults and arrivals (not its age). */
const sameVerdict = (a: DeployVerdict, b: DeployVerdict) =>
  a.deploy.id === b.deploy.id &&
  a.state === b.state &&
  a.faults.join() === b.faults.join() &&
  a.dialogs.after === b.dialogs.after &&
  a.dialogs.baseline === b.dialogs.baseline;

function brokenEvent(verdict: DeployVerdict, at: number): DeployBrokenEvent {
  const faults = verdict.faults.map((key) => verdict.checks.find((c) => c.key === key)!);
  return {
    kind: 'deploy-broken',
    key: verdict.faults[0]!,
    deploy: verdict.deploy,
    faults: faults.map((c) => ({ key: c.key, baseline: c.baseline.rate, after: c.after.rate, relativeEffect: c.relativeEffect })),
    dialogs: verdict.dialogs.after,
    at,
    service: 'kpi-live',
  };
}

const window = { type: 'object', required: ['from', 'to'], additionalProperties: false, properties: { from: { type: 'number' }, to: { type: 'number' } } };
const side = {
  type: 'object',
  required: ['successes', 'trials', 'rate'],
  additionalProperties: false,
  properties: { successes: { type: 'number' }, trials: { type: 'number' }, rate: { type: ['number', 'null'] } },
};
const nullableNumber = { type: ['number', 'null'] };
/** The exact shape of a verdict (contract/verdict.ts). */
export const verdictSchema = {
  type: 'object',
  required: ['deploy', 'state', 'faults', 'ageMs', 'dialogs', 'baselineWindows', 'checks', 'method', 'judgedAt'],
  additionalProperties: false,
  properties: {
    deploy: {
      type: 'object',
      required: ['id', 'version', 'at'],
      additionalProperties: false,
      properties: { id: { type: 'string' }, version: { type: 'string' }, at: { type: 'number' } },
    },
    state: { type: 'string', enum: VERDICT_STATES },
    faults: { type: 'array', items: { type: 'string' } },
    ageMs: { type: 'number' },
    dialogs: {
      type: 'object',
      required: ['after', 'baseline'],
      additionalProperties: false,
      properties: { after: { type: 'number' }, baseline: { type: 'number' } },
    },
    baselineWindows: { type: 'array', items: window },
    checks: {
      type: 'array',
      items: {
        type: 'object',
        required: ['key', 'label', 'worse', 'baseline', 'after', 'effect', 'relativeEffect', 'low', 'high', 'state'],
        additionalProperties: false,
        properties: {
          key: { type: 'string' },
          label: { type: 'string' },
          worse: { type: 'string', enum: ['higher', 'lower'] },
          baseline: side,
          after: side,
          effect: nullableNumber,
          relativeEffect: nullableNumber,
          low: nullableNumber,
          high: nullableNumber,
          state: { type: 'string', enum: ['no baseline', 'not enough data', 'ok', 'unclear', 'suspect', 'broken'] },
        },
      },
    },
    method: {
      type: 'object',
      required: ['name', 'alpha', 'alphaSuspect', 'minAfterTrials', 'minBaselineTrials', 'minHarm', 'margin'],
      additionalProperties: false,
      properties: {
        name: { type: 'string' },
        alpha: { type: 'number' },
        alphaSuspect: { type: 'number' },
        minAfterTrials: { type: 'number' },
        minBaselineTrials: { type: 'number' },
        minHarm: { type: 'object', required: ['relative', 'absolute'], properties: { relative: { type: 'number' }, absolute: { type: 'number' } } },
        margin: { type: 'object', required: ['relative', 'absolute'], properties: { relative: { type: 'number' }, absolute: { type: 'number' } } },
      },
    },
    judgedAt: { type: 'number' },
  },
} as const;

async function verdicts(app: FastifyInstance, _options: { config: Config }): Promise<void> {
  const baselineOf = (deploy: Deploy, now: number) => {
    let windows = sameHoursWindows(deploy.at, now);
    let baseline = app.aggregates.windowsTotal(windows);
    if (baseline.dialogs < MIN_POOLED_DIALOGS) {
      windows = [...windows, hoursBeforeWindow(deploy.at, windows.at(-1))];
      baseline = app.aggregates.windowsTotal(windows);
    }
    return { baseline, windows };
  };
  const of = (deploy: Deploy, now = Date.now()): DeployVerdict => {
    // no arrival bucket yet: nothing has arrived after it (an empty window list gives empty KPIs)
    const after = app.aggregates.arrivals(deploy.id) ?? app.aggregates.windowsTotal([]);
    const { baseline, windows } = baselineOf(deploy, now);
    return judgeDeploy({ deploy, baseline, after, baselineWindows: windows, now });
  };
  const latest = (now = Date.now()): Deploy | undefined => app.deploys.list(0, now + 1).at(-1);

  // The latest deploy, judged as blobs arrive (at most once a second), as
  // time passes (every 10 s) and when a marker comes: for the stream and
  // for the webhook, which hears of a deploy turning broken once.
  const current = new BehaviorSubject<DeployVerdict | null>(null);
  const announced = new Set<string>();
  const judgeLatest = () => {
    const now = Date.now();
    const deploy = latest(now);
    if (!deploy || now - deploy.at >= ARRIVAL_WINDOW_MS) {
      if (current.value !== null) current.next(null);
      return;
    }
    if (app.aggregates.status().phase !== 'live') return;
    const verdict = of(deploy, now);
    const previous = current.value;
    if (!previous || !sameVerdict(previous, verdict)) current.next(verdict);
    if (verdict.state === 'broken' && !announced.has(deploy.id) && app.leadership.isLeader()) {
      announced.add(deploy.id);
      app.log.warn({ deploy: deploy.id, version: deploy.version, faults: verdict.faults }, 'deploy verdict: broken');
      app.alerts.notify(brokenEvent(verdict, now));
    }
  };
  const watching = merge(
    app.aggregates.changes$.pipe(throttleTime(JUDGE_THROTTLE_MS, asyncScheduler, { leading: true, trailing: true })),
    interval(JUDGE_EVERY_MS),
    app.deploys.added$,
  ).subscribe(() => {
    try {
      judgeLatest();
    } catch (err) {
      app.log.warn({ err: (err as Error).message }, 'could not judge the latest deploy');
    }
  });
  judgeLatest();
  app.addHook('onClose', async () => {
    watching.unsubscribe();
    current.complete();
  });

  app.decorate('verdicts', { of, latest, current: () => current.value, current$: current.asObservable() } satisfies Verdicts);

  /** The deploy a request names (a marker's id, or `latest`) whose arrivals are kept; throws 404 otherwise. */
  const deployOf = (id: string, now: number): Deploy => {
    const deploy = id === 'latest' ? latest(now) : app.deploys.get(id);
    if (!deploy) throw new HttpError(404, id === 'latest' ? 'no deploy marker yet' : `no deploy "${id}"`, 'id');
    if (deploy.at < app.aggregates.status().watermark - ARRIVALS_KEPT_MS)
      throw new HttpError(404, `deploy "${deploy.id}" is older than the 7 days its arrivals are kept: no verdict`, 'id');
    return deploy;
  };

  await app.register(async (api) => {
    api.addHook('onRequest', app.auth.requireReader);
    const params = { type: 'object', properties: { id: { type: 'string', minLength: 1, maxLength: 200 } } };
    const errors = { 401: errorResponseSchema, 403: errorResponseSchema, 404: errorResponseSchema };

    // what a verdict compares, whole: the funnels and tiles of the dialogs since the deploy and of its baseline
    api.get<{ Params: { id: string } }>(
      '/api/deploys/:id/arrivals',
      {
        schema: {
          params,
          response: {
            200: {
              type: 'object',
              required: ['deploy', 'after', 'baseline', 'baselineWindows'],
              additionalProperties: false,
              properties: {
                deploy: verdictSchema.properties.deploy,
                after: kpisSchema,
                baseline: kpisSchema,
                baselineWindows: verdictSchema.properties.baselineWindows,
              },
            },
            ...errors,
          },
        },
      },
      async (request) => {
        const now = Date.now();
        const deploy = deployOf(request.params.id, now);
        const { baseline, windows } = baselineOf(deploy, now);
        return {
          deploy: { id: deploy.id, version: deploy.version, at: deploy.at },
          after: app.aggregates.arrivals(deploy.id) ?? app.aggregates.windowsTotal([]),
          baseline,
          baselineWindows: windows,
        };
      },
    );
    api.get<{ Params: { id: string } }>(
      '/api/deploys/:id/verdict',
      { schema: { params, response: { 200: verdictSchema, ...errors, 503: errorResponseSchema } } },
      async (request, reply) => {
        const now = Date.now();
        const deploy = deployOf(request.params.id, now);
        const phase = app.aggregates.status().phase;
        if (phase !== 'live')
          return sendUnavailable(
            reply,
            CATCHING_UP_RETRY_SECONDS,
            `the aggregate is ${phase}: a verdict now would judge part of the data; retry in ${CATCHING_UP_RETRY_SECONDS} s`,
          );
        return of(deploy, now);
      },
    );
  });
}

export default fp(verdicts, { name: 'kpi-verdicts', dependencies: ['kpi-auth', 'kpi-aggregates', 'kpi-deploys', 'kpi-alerts'], fastify: '5.x' });
