/**
 * The lease on a CouchDB cluster, where two instances' writes at one
 * revision can both be accepted (they reached different nodes): CouchDB keeps
 * both as conflicting revisions with one winner, the same for everybody. A
 * fake store plays such a cluster; exactly one instance must end up
 * following, and the losing revision must be gone.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { LeaseElector } from '../../src/cluster/elector.js';
import { StoreRequestError, type Store, type StoreRequest } from '../../src/store/store.js';

type Doc = Record<string, unknown> & { _rev: string };

/** One document on a cluster whose nodes have not yet exchanged writes: a write at a revision any node still has as current is accepted. */
function splitBrainStore(): { store: Store; leaves: () => string[] } {
  const leaves = new Map<string, Doc>();
  /** Revisions some node still takes as current (the parents of the leaves, while the split lasts). */
  const stale = new Set<string>(['']);
  let seq = 0;
  const generation = (rev: string) => Number.parseInt(rev, 10) || 0;
  const winner = () => [...leaves.values()].sort((a, b) => generation(b._rev) - generation(a._rev) || (a._rev < b._rev ? 1 : -1))[0];
  const request = async (req: StoreRequest): Promise<unknown> => {
    const method = (req.method ?? 'GET').toUpperCase();
    if (req.path === '' && method === 'HEAD') return { date: new Date().toUTCString() };
    if (method === 'GET') {
      const doc = winner();
      if (!doc) throw new StoreRequestError('missing', 404, 'not_found');
      const conflicts = [...leaves.keys()].filter((rev) => rev !== doc._rev);
      return { ...doc, ...(req.qs?.conflicts && conflicts.length > 0 ? { _conflicts: conflicts } : {}) };
    }
    if (method === 'PUT') {
      const body = req.body as Record<string, unknown>;
      const base = typeof body._rev === 'string' ? body._rev : '';
      if (!leaves.has(base) && !stale.has(base)) throw new StoreRequestError('Document update conflict.', 409, 'conflict');
      const rev = `${generation(base) + 1}-${(++seq).toString(16).padStart(8, '0')}`;
      leaves.delete(base);
      stale.add(base);
      leaves.set(rev, { ...body, _rev: rev });
      return { ok: true, id: req.path, rev };
    }
    if (method === 'DELETE') {
      leaves.delete(String(req.qs?.rev));
      return { ok: true };
    }
    throw new Error(`unexpected ${method} ${req.path}`);
  };
  return { store: { request } as unknown as Store, leaves: () => [...leaves.keys()] };
}

describe('the lease on a cluster that accepts two writes at one revision', () => {
  it('leaves exactly one follower, and the winner removes the losing revision', async () => {
    const { store, leaves } = splitBrainStore();
    const log = pino({ level: 'silent' });
    const electors = ['a', 'b'].map((id) => new LeaseElector({ store, db: 'x_aggregates', instanceId: id, ttlMs: 3000, mode: 'auto', log }));
    // both find no lease and write one at the same (absent) revision: both are accepted
    await Promise.all(electors.map((e) => e.start()));
    try {
      expect(electors.filter((e) => e.isLeader)).toHaveLength(1);
      expect(leaves()).toHaveLength(1);
    } finally {
      await Promise.all(electors.map((e) => e.release()));
    }
  });
});
