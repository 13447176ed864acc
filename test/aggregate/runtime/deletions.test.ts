/**
 * Deletions on the `_changes` feed (retention, or a blob removed by hand)
 * never subtract: the aggregate counts what was sent.
 */
import { map } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { IX } from '../../../src/aggregate/model/cell.js';
import { applyChanges, isDeletion, type ChangeBatch, type FeedChange } from '../../../src/aggregate/runtime/feed.js';
import { defaultSegmentConfig } from '../../../src/aggregate/model/segments.js';
import { AggregateState } from '../../../src/aggregate/model/state.js';
import { blobDocId } from '../../../src/store/blob-ids.js';

const T = Date.UTC(2026, 9, 1, 12, 0);
const RUN = 'aaaaaaaaaa';

const blob = (counter: number, minutes = 0) => ({
  _id: blobDocId(T + minutes * 60_000, RUN, counter),
  _rev: '1-a',
  timestamp: T + minutes * 60_000,
  event_stream: [
    ['screen.rp_info', 10],
    ['assertion_generated', 900 + counter],
  ],
});

const written = (counter: number, minutes = 0): FeedChange => {
  const doc = blob(counter, minutes);
  return { id: doc._id, seq: counter, doc };
};

/** How CouchDB and pouchdb-server report a deletion with `include_docs`. */
const tombstone = (counter: number, minutes = 0): FeedChange => {
  const id = blob(counter, minutes)._id;
  return { id, seq: 100 + counter, deleted: true, doc: { _id: id, _rev: '2-b', _deleted: true } };
};

const json = (state: AggregateState) => JSON.stringify(state.toJSON());

describe('applyChanges and deletions', () => {
  it('recognises a deletion by the change flag or by the tombstone alone', () => {
    const flagged = tombstone(1);
    expect(isDeletion(flagged)).toBe(true);
    expect(isDeletion({ id: flagged.id, seq: 1, deleted: true })).toBe(true);
    expect(isDeletion({ id: flagged.id, seq: 1, doc: { _id: flagged.id, _deleted: true } })).toBe(true);
    expect(isDeletion(written(1))).toBe(false);
  });

  it('counts blobs, then leaves the state unchanged when they are deleted, however the deletion is reported', () => {
    const state = new AggregateState(defaultSegmentConfig);
    expect(applyChanges(state, [written(0), written(1), written(2, 30)])).toEqual({ counted: 3, duplicates: 0, deletions: 0 });
    const before = json(state);
    const version = state.version;
    const onlyDoc = { ...tombstone(1), deleted: undefined };
    const onlyFlag = { id: tombstone(2, 30).id, seq: 7, deleted: true };
    expect(applyChanges(state, [tombstone(0), onlyDoc, onlyFlag])).toEqual({ counted: 0, duplicates: 0, deletions: 3 });
    expect(json(state)).toBe(before);
    expect(state.version).toBe(version);
    // a deletion of a blob never counted does not mark it counted either
    expect(applyChanges(state, [{ ...tombstone(9), deleted: undefined }]).deletions).toBe(1);
    expect(state.applied.has(blob(9)._id)).toBe(false);
  });

  it('a deletion then a replay of the original write counts nothing twice', () => {
    const state = new AggregateState(defaultSegmentConfig);
    applyChanges(state, [written(0), tombstone(0)]);
    const before = json(state);
    expect(applyChanges(state, [written(0)])).toEqual({ counted: 0, duplicates: 1, deletions: 0 });
    expect(json(state)).toBe(before);
  });

  it('over time: batches of writes count, batches of deletions add nothing (marble)', () => {
    new TestScheduler((actual, expected) => expect(actual).toEqual(expected)).run(({ cold, expectObservable }) => {
      const state = new AggregateState(defaultSegmentConfig);
      const batch = (changes: FeedChange[]): ChangeBatch => ({ changes, lastSeq: changes.at(-1)?.seq, pending: undefined, caughtUp: true });
      const feed = cold('a-b--c-d|', {
        a: batch([written(0), written(1)]),
        b: batch([tombstone(0)]),
        c: batch([tombstone(1), written(2, 10)]),
        d: batch([written(0)]),
      });
      const dialogs = () => [...state.buckets.values()].reduce((n, bucket) => n + bucket.all.c[IX.dialogs]!, 0);
      const applied = feed.pipe(
        map((b) => {
          const result = applyChanges(state, b.changes);
          return { ...result, dialogs: dialogs() };
        }),
      );
      expectObservable(applied).toBe('a-b--c-d|', {
        a: { counted: 2, duplicates: 0, deletions: 0, dialogs: 2 },
        b: { counted: 0, duplicates: 0, deletions: 1, dialogs: 2 },
        c: { counted: 1, duplicates: 0, deletions: 1, dialogs: 3 },
        d: { counted: 0, duplicates: 1, deletions: 0, dialogs: 3 },
      });
    });
  });
});
