/**
 * The alerts' own small database (`<KPI_DB>_alerts`), next to the blobs and
 * the aggregates, with two documents:
 *
 * - `thresholds`: the set stored by `PUT /api/thresholds`, in force on every
 *   instance instead of `KPI_THRESHOLDS`. Instances poll it, so a change made
 *   on one reaches the others within one poll interval.
 * - `breaches`: the keys breached at the last judgement, so that a restart
 *   neither announces a standing breach again nor forgets to announce its end.
 *
 * The database is created by the first write; reading a missing one reads
 * nothing. Writes are last-writer-wins: a conflict (another instance wrote
 * in between) is retried on the new revision.
 */
import type { Log } from '../log.js';
import { ConflictError, Database } from '../store/database.js';
import { ensureDatabase } from '../store/setup.js';
import { StoreRequestError, type Store } from '../store/store.js';
import { checkThresholds, isThresholdKey } from './thresholds.js';
import type { ThresholdKey, Thresholds } from './types.js';
import type { Bound } from './hysteresis.js';

const THRESHOLDS_DOC = 'thresholds';
const BREACHES_DOC = 'breaches';

/** A breach remembered across restarts. */
export interface LatchedBreach {
  bound: Bound;
  limit: number;
}

export interface StoredThresholds {
  thresholds: Thresholds;
  rev: string;
}

const isNotFound = (err: unknown) => err instanceof StoreRequestError && err.statusCode === 404;

export class AlertsDb {
  readonly #database: Database;

  constructor(
    readonly store: Store,
    readonly db: string,
    readonly log: Log,
  ) {
    this.#database = new Database(store, db);
  }

  /** Creates the database unless it exists. */
  async ensure(): Promise<void> {
    await ensureDatabase(this.store, this.db);
  }

  /** Writes a document whatever its current revision (last writer wins). */
  async #put(id: string, body: Record<string, unknown>): Promise<string> {
    for (let attempt = 1; ; attempt++) {
      const current = await this.#database.get(id);
      try {
        return await this.#database.put({ ...body, _id: id, ...(current?._rev ? { _rev: current._rev } : {}) });
      } catch (err) {
        if (attempt >= 5) throw err;
        // The database is made on the first write: an instance that never stores anything leaves none behind.
        if (isNotFound(err)) await this.ensure();
        else if (!(err instanceof ConflictError)) throw err;
      }
    }
  }

  /**
   * The stored thresholds, if any. A stored set that no longer holds (a
   * funnel lost a step in a newer kpi-live) is ignored, with a warning.
   */
  async loadThresholds(): Promise<StoredThresholds | undefined> {
    const doc = await this.#database.get<{ thresholds?: unknown }>(THRESHOLDS_DOC);
    if (!doc) return undefined;
    try {
      return { thresholds: checkThresholds(doc.thresholds, 'thresholds'), rev: doc._rev! };
    } catch (err) {
      this.log.warn({ db: this.db, err: (err as Error).message }, 'stored alert thresholds are invalid: using the configured ones');
      return undefined;
    }
  }

  /** Stores a checked threshold set; returns its revision. */
  async saveThresholds(thresholds: Thresholds, at = Date.now()): Promise<string> {
    return this.#put(THRESHOLDS_DOC, { thresholds, updatedAt: at });
  }

  /** The breaches standing at the last judgement of any instance (entries of another shape are left out). */
  async loadBreaches(): Promise<Partial<Record<ThresholdKey, LatchedBreach>>> {
    const doc = await this.#database.get<{ breaches?: unknown }>(BREACHES_DOC);
    const out: Partial<Record<ThresholdKey, LatchedBreach>> = {};
    if (typeof doc?.breaches !== 'object' || doc.breaches === null) return out;
    for (const [key, value] of Object.entries(doc.breaches)) {
      const { bound, limit } = (value ?? {}) as Partial<LatchedBreach>;
      if (isThresholdKey(key) && (bound === 'min' || bound === 'max') && typeof limit === 'number' && Number.isFinite(limit)) out[key] = { bound, limit };
    }
    return out;
  }

  async saveBreaches(breaches: Partial<Record<ThresholdKey, LatchedBreach>>): Promise<void> {
    await this.#put(BREACHES_DOC, { breaches, updatedAt: Date.now() });
  }
}

/**
 * Polls the stored thresholds every `everyMs` and calls `onChange` with the
 * new set (or `undefined` when it was removed) whenever its revision differs
 * from the last one seen. A failed poll is logged once per outage; the next
 * one retries. Returns the function that stops polling.
 */
export function watchThresholds(
  alertsDb: AlertsDb,
  initialRev: string | undefined,
  everyMs: number,
  onChange: (stored: StoredThresholds | undefined) => void,
): { stop(): void; seen(rev: string): void; readonly polls: number } {
  let rev = initialRev;
  let polls = 0;
  // Bumped by each write of this instance: a poll that started before it may have read the set it replaced.
  let writes = 0;
  let failing = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const poll = async () => {
    const writesBefore = writes;
    try {
      const stored = await alertsDb.loadThresholds();
      if (failing) alertsDb.log.info({ db: alertsDb.db }, 'alert thresholds readable again');
      failing = false;
      if (!stopped && writes === writesBefore && stored?.rev !== rev) {
        rev = stored?.rev;
        onChange(stored);
      }
    } catch (err) {
      if (!failing) alertsDb.log.warn({ db: alertsDb.db, err: (err as Error).message }, 'cannot read the stored alert thresholds; retrying');
      failing = true;
    }
    polls++;
    if (!stopped) timer = setTimeout(() => void poll(), everyMs);
  };
  timer = setTimeout(() => void poll(), everyMs);
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
    /** A revision this instance wrote itself: no need to apply it again. */
    seen(newRev: string) {
      writes++;
      rev = newRev;
    },
    /** Polls finished so far (each read the store, or failed to). */
    get polls() {
      return polls;
    },
  };
}
