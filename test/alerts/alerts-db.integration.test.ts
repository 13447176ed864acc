/**
 * The alerts' database on the harness's real CouchDB: a threshold set stored
 * by one instance reaches another through its poll, writes from two
 * instances do not conflict, and an invalid stored set is not put in force.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlertsDb, watchThresholds, type StoredThresholds } from '../../src/alerts/alerts-db.js';
import { dropDb, startTestApp, uniqueDbName, type TestApp } from '../harness/app.js';
import { waitUntil } from '../harness/process.js';

const silent = pino({ level: 'silent' });

describe('AlertsDb', () => {
  const db = uniqueDbName('alerts_db');
  let t: TestApp;
  let one: AlertsDb;
  let other: AlertsDb;

  beforeAll(async () => {
    t = await startTestApp();
    one = new AlertsDb(t.store, db, silent);
    other = new AlertsDb(t.store, db, silent);
  });
  afterAll(async () => {
    await dropDb(db);
    await t?.close();
    await dropDb(`${t.config.dbName}_alerts`);
  });

  it('reads nothing from a database not made yet, and makes it on the first write', async () => {
    expect(await one.loadThresholds()).toBeUndefined();
    expect(await one.loadBreaches()).toEqual({});
    await one.saveBreaches({});
    expect(await other.loadBreaches()).toEqual({});
  });

  it('brings a set stored by one instance to another within a poll', async () => {
    expect(await other.loadThresholds()).toBeUndefined();
    const seen: (StoredThresholds | undefined)[] = [];
    const poller = watchThresholds(other, undefined, 50, (stored) => seen.push(stored));
    try {
      const rev = await one.saveThresholds({ bounceRate: { max: 0.7 } });
      await waitUntil(() => seen.length === 1, 10_000, 'the other instance to see the new set');
      expect(seen[0]).toEqual({ thresholds: { bounceRate: { max: 0.7 } }, rev });
      await one.saveThresholds({ bounceRate: { max: 0.6 } });
      await waitUntil(() => seen.length === 2, 10_000, 'the other instance to see the second set');
      expect(seen[1]!.thresholds).toEqual({ bounceRate: { max: 0.6 } });
    } finally {
      poller.stop();
    }
  });

  it('does not hand an instance back the set it wrote itself', async () => {
    const seen: unknown[] = [];
    const current = await one.loadThresholds();
    const poller = watchThresholds(one, current?.rev, 20, (stored) => seen.push(stored));
    try {
      poller.seen(await one.saveThresholds({ errorRate: { max: 0.05 } }));
      // a few polls go by without a change
      const after = poller.polls;
      await waitUntil(() => poller.polls >= after + 3, 10_000, 'three more polls');
      expect(seen).toEqual([]);
    } finally {
      poller.stop();
    }
  });

  it('lets two instances write at once, the last one winning', async () => {
    await Promise.all([
      one.saveThresholds({ newUsers: { min: 1 } }),
      other.saveThresholds({ newUsers: { min: 2 } }),
      one.saveBreaches({ bounceRate: { bound: 'max', limit: 0.7 } }),
      other.saveBreaches({}),
    ]);
    expect([{ newUsers: { min: 1 } }, { newUsers: { min: 2 } }]).toContainEqual((await one.loadThresholds())!.thresholds);
    await one.saveBreaches({ bounceRate: { bound: 'max', limit: 0.7 } });
    expect(await other.loadBreaches()).toEqual({ bounceRate: { bound: 'max', limit: 0.7 } });
  });

  it('ignores a stored set that does not hold', async () => {
    const doc = await t.store.request<{ _rev: string }>({ db, path: 'thresholds' });
    await t.store.request({ method: 'PUT', db, path: 'thresholds', body: { _rev: doc._rev, thresholds: { bounce: { max: 2 } } } });
    expect(await one.loadThresholds()).toBeUndefined();
  });
});
