/**
 * Drives a kpi-live service with simulated dialogs over its real HTTP API:
 * one POST per session (as deployed dialogs do) or `batch` sessions per POST
 * (as a dialog sending its backlog does), at a target rate, for a bounded
 * time, with a bounded number of requests in flight. Stops by itself.
 */
import { Progress } from '../cli/progress.js';
import { seededRandom, simulateSession } from './generator.js';
import { sleep } from '../sleep.js';

export interface SimulateOptions {
  url: string;
  /** Target sessions per second. */
  rate: number;
  /** Seconds to run. */
  durationSeconds: number;
  seed: number;
  breaks?: ReadonlyMap<string, number>;
  /** Sessions per POST. */
  batch?: number;
  /** Requests in flight at most. */
  concurrency?: number;
  /** Spread timestamps evenly over this many past hours instead of "now" (backfill). */
  spreadHours?: number;
  progress?: boolean;
}

export interface SimulateSummary {
  seed: number;
  sent: number;
  accepted: number;
  rejected: number;
  failed: number;
  byStatus: Record<string, number>;
  seconds: number;
  ratePerSec: number;
}

/**
 * @example
 * const summary = await simulate({ url: 'http://127.0.0.1:3434', rate: 100, durationSeconds: 10, seed: 1 });
 */
export async function simulate(options: SimulateOptions): Promise<SimulateSummary> {
  const endpoint = new URL('/wsapi/interaction_data', options.url).toString();
  const random = seededRandom(options.seed);
  const batch = Math.max(1, options.batch ?? 1);
  const concurrency = Math.max(1, options.concurrency ?? 64);
  const totalSessions = Math.max(0, Math.round(options.rate * options.durationSeconds));
  const progress = options.progress === false ? undefined : new Progress({ label: 'simulate', total: totalSessions, unit: 'blobs' });
  const byStatus: Record<string, number> = {};
  let sent = 0;
  let accepted = 0;
  let rejected = 0;
  let failed = 0;
  let inFlight = 0;
  const started = Date.now();
  const spreadMs = (options.spreadHours ?? 0) * 3_600_000;

  const post = async (blobs: Record<string, unknown>[], userAgent: string) => {
    inFlight += 1;
    try {
      const res = await fetch(endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': userAgent },
        body: JSON.stringify({ data: blobs, csrf: 'simulated' }),
        signal: AbortSignal.timeout(30_000),
      });
      await res.arrayBuffer();
      byStatus[res.status] = (byStatus[res.status] ?? 0) + blobs.length;
      if (res.status === 200) accepted += blobs.length;
      else rejected += blobs.length;
    } catch {
      failed += blobs.length;
      byStatus.network = (byStatus.network ?? 0) + blobs.length;
    } finally {
      inFlight -= 1;
    }
  };

  const pending = new Set<Promise<void>>();
  while (sent < totalSessions) {
    const elapsed = (Date.now() - started) / 1000;
    const due = Math.min(totalSessions, Math.floor(elapsed * options.rate) + batch);
    while (sent < due && inFlight < concurrency) {
      const size = Math.min(batch, totalSessions - sent);
      const blobs: Record<string, unknown>[] = [];
      let userAgent = '';
      for (let i = 0; i < size; i++) {
        const now = spreadMs > 0 ? started - spreadMs + (spreadMs * (sent + i)) / totalSessions : Date.now();
        const session = simulateSession(random, { now, ...(options.breaks ? { breaks: options.breaks } : {}) });
        blobs.push(session.blob);
        userAgent ||= session.userAgent;
      }
      sent += size;
      const p = post(blobs, userAgent);
      pending.add(p);
      void p.finally(() => pending.delete(p));
    }
    progress?.note(`accepted ${accepted}, rejected ${rejected}, failed ${failed}`);
    progress?.update(sent);
    if (elapsed > options.durationSeconds * 3 + 30) break; // a stalled service must not keep us forever
    await sleep(5);
  }
  await Promise.all(pending);
  const seconds = (Date.now() - started) / 1000;
  progress?.note(`accepted ${accepted}, rejected ${rejected}, failed ${failed}`);
  progress?.finish(sent);
  return { seed: options.seed, sent, accepted, rejected, failed, byStatus, seconds, ratePerSec: sent / Math.max(seconds, 1e-3) };
}
