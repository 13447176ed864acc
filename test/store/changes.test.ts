/**
 * The `_changes` reader on a scripted store: what it asks for, and that a
 * batch says whether the store answered or the read was cut while it waited
 * (`held`), which is all "nothing new" to the aggregate but not to a reader
 * that must know the store is alive (signed-out sessions).
 */
import { describe, expect, it } from 'vitest';
import { couchChangesReader } from '../../src/store/changes.js';
import { StoreUnavailableError, type Store, type StoreRequest } from '../../src/store/store.js';

/** A store whose `_changes` answers `answer(req)`, recording each request. */
function scripted(answer: (req: StoreRequest) => Promise<unknown>): { store: Store; asked: StoreRequest[] } {
  const asked: StoreRequest[] = [];
  const request = (req: StoreRequest) => {
    asked.push(req);
    return answer(req);
  };
  return { store: { request } as unknown as Store, asked };
}

const signal = () => new AbortController().signal;

describe('couchChangesReader', () => {
  it('passes the position back as the store sent it, with docs unless told otherwise', async () => {
    const { store, asked } = scripted(async () => ({ results: [{ id: 'a', seq: '13-x' }], last_seq: '13-x', pending: 0 }));
    const batch = await couchChangesReader(store, 'db', { limit: 10, longpollMs: 0 })('12-opaque', signal());
    expect(batch).toEqual({ changes: [{ id: 'a', seq: '13-x' }], lastSeq: '13-x', pending: 0, caughtUp: true });
    await couchChangesReader(store, 'db', { limit: 10, longpollMs: 0, includeDocs: false })(7, signal());
    expect(asked.map((req) => req.qs)).toEqual([
      { since: '12-opaque', include_docs: true, limit: 10 },
      { since: '7', limit: 10 },
    ]);
  });

  it('bounds a read that does not wait by timeoutMs, and one that waits by the longpoll', async () => {
    const { store, asked } = scripted(async () => ({ results: [], last_seq: 1 }));
    const read = couchChangesReader(store, 'db', { limit: 10, longpollMs: 1000, timeoutMs: 300 });
    await read(0, signal(), false);
    await read(0, signal(), true);
    expect(asked.map((req) => req.timeoutMs)).toEqual([300, 1200]);
    expect(asked[1]!.qs).toMatchObject({ feed: 'longpoll', timeout: 1000 });
  });

  it('tells a longpoll the store answered with nothing new from one it did not answer', async () => {
    const answered = scripted(async () => ({ results: [], last_seq: '12-opaque', pending: 0 }));
    const quiet = await couchChangesReader(answered.store, 'db', { limit: 10, longpollMs: 100 })('12-opaque', signal(), true);
    expect(quiet).toEqual({ changes: [], lastSeq: '12-opaque', pending: 0, caughtUp: true });
    expect(quiet.held).toBeUndefined();

    const timingOut = scripted(() => Promise.reject(new StoreUnavailableError('store timed out', true)));
    expect((await couchChangesReader(timingOut.store, 'db', { limit: 10, longpollMs: 100 })('12-opaque', signal(), true)).held).toBe(true);

    // a store that holds the request and never ends it, even when it is aborted
    const holding = scripted(() => new Promise(() => undefined));
    const started = Date.now();
    const held = await couchChangesReader(holding.store, 'db', { limit: 10, longpollMs: 100 })('12-opaque', signal(), true);
    expect(held).toEqual({ changes: [], lastSeq: '12-opaque', pending: 0, caughtUp: true, held: true });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1100);
  });
});
