/**
 * The live stream's wire protocol (`GET /api/live`, JSON text frames). The
 * dashboard shares these types; nothing else of the service.
 *
 * 1. The client sends `hello` first: what it shows, its token (unless the
 *    upgrade request carried `Authorization: Bearer …`, or reads are open to
 *    loopback), and, when reconnecting, the epoch and version it last saw.
 * 2. The server answers `snapshot` (everything in the window), or, when the
 *    client resumes within the same epoch, a `delta` of what it missed.
 * 3. Then `delta`s: only the points holding buckets that changed (late blobs
 *    included), at most one per coalescing interval, with a growing version;
 *    `totals` always cover the whole window. The window slides with time,
 *    unless the subscription fixes its start (`from`). A `top` subscription
 *    gets a snapshot instead of a delta when its top values change.
 * 4. `deploy` when a deploy marker is added.
 * A client may send `subscribe` at any time to change what it shows (a new
 * snapshot follows).
 *
 * Every message is checked against a JSON schema (client-messages.ts) before
 * anything else looks at it: a message of another shape gets an `error`
 * naming the field (`subscribe.rangeMs must be …`, `hello.token must be a
 * string …`), then the close. Close codes:
 * - 4400 bad message (not JSON text, not an object, a field of the wrong type
 *   or out of range, unknown fields, no hello first);
 * - 4401 bad or missing token;
 * - 4408 no hello within `KPI_STREAM_HELLO_MS`;
 * - 4429 the address already holds `KPI_STREAM_MAX_UNGREETED_PER_ADDRESS`
 *   sockets that have not said hello: closed at once; retry later, with backoff;
 * - 1011 the service failed on a message (a bug; the service stays up);
 * - 1001 the service shuts down;
 * - and from the WebSocket layer: 1007 text that is not UTF-8, 1009 a
 *   message over 64 KiB, 1002 a frame the protocol forbids.
 */
import type { DeployVerdict } from './verdict.js';
import type { BucketName, Dimension, KpiAnswer } from './kpis.js';
import type { Deploy } from '../deploys/types.js';

export interface Subscription {
  /** Window length, ms: back from now (e.g. 6 h), or on from `from`. */
  rangeMs: number;
  /**
   * A window fixed in time, `[from, from + rangeMs)` (ms), instead of one
   * that slides with now. Its deltas carry only late or new blobs that land
   * in it; a window wholly in the past gets none unless a late blob does.
   */
  from?: number;
  /** Bucket size; chosen from the range when absent. */
  bucket?: BucketName;
  segment?: Dimension;
  /**
   * With `segment`: the `top` values (1–20) with the most dialogs in the
   * window as series of their own, every other value merged into `Other`.
   * When the top values change, the next update is a snapshot.
   */
  top?: number;
}

export type ClientMessage =
  { type: 'hello'; token?: string; subscribe: Subscription; resume?: { epoch: string; version: number } } | { type: 'subscribe'; subscribe: Subscription };

export type ServerMessage =
  | { type: 'snapshot'; epoch: string; version: number; kpis: KpiAnswer; deploys: Deploy[]; verdict?: DeployVerdict | null }
  | { type: 'delta'; epoch: string; version: number; kpis: KpiAnswer }
  | { type: 'deploy'; deploy: Deploy }
  /** The latest deploy's verdict, when it changes (null: no deploy is recent any more). */
  | { type: 'verdict'; verdict: DeployVerdict | null }
  | { type: 'error'; message: string };

export const CLOSE = { badMessage: 4400, unauthorized: 4401, helloTimeout: 4408, tooManyWaiting: 4429, internalError: 1011, goingAway: 1001 } as const;
