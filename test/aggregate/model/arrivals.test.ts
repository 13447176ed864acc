/**
 * Arrivals after a deploy, in the pure model: a blob whose run comes after a
 * deploy is counted in that deploy's arrival bucket once, whatever the
 * order, the replays and the instance that applies it (each instance applies
 * what its feed brings, with the same run records), and a blob of any other
 * run is not; the window after the deploy bounds it; the bucket survives
 * JSON and is dropped once kept long enough.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applyFacts, cellToJson, emptyCell } from '../../../src/aggregate/model/cell.js';
import { blobFacts } from '../../../src/aggregate/model/facts.js';
import { defaultSegmentConfig } from '../../../src/aggregate/model/segments.js';
import { AggregateState, arrivalKey, type AfterDeploy } from '../../../src/aggregate/model/state.js';
import { ARRIVAL_WINDOW_MS, ARRIVALS_KEPT_MS } from '../../../src/contract/verdict.js';
import { DAY } from '../../../src/contract/kpis.js';
import { runAndCounter } from '../../../src/store/blob-ids.js';
import { BASE_TIME, blobList, shuffled, type TestBlob } from './blob-arbitrary.js';

const config = defaultSegmentConfig;
const D1: AfterDeploy = { id: 'deploy/one', at: BASE_TIME + 2 * DAY };
const D2: AfterDeploy = { id: 'deploy/two', at: BASE_TIME + 3 * DAY };

/** Run records as the aggregate reads them: each test run is after some of the deploys. */
const recordsFrom = (assign: number[]) => {
  const options: AfterDeploy[][] = [[], [D1], [D1, D2], [D2]];
  const runs = ['aaaaaaaaaa', 'bbbbbbbbbb', 'cccccccccc'];
  const byRun = new Map(runs.map((run, i) => [run, options[(assign[i] ?? 0) % options.length]!]));
  return (id: string) => byRun.get(runAndCounter(id)?.run ?? '') ?? [];
};

/** The reference: every blob after the deploy (by its run) within the window, merged in one cell. */
function expectedArrivals(blobs: TestBlob[], afterOf: (id: string) => readonly AfterDeploy[], deploy: AfterDeploy) {
  const cell = emptyCell();
  const seen = new Set<string>();
  for (const b of blobs) {
    if (seen.has(b._id)) continue;
    seen.add(b._id);
    const facts = blobFacts(b, config);
    if (facts && afterOf(b._id).some((d) => d.id === deploy.id) && facts.time < deploy.at + ARRIVAL_WINDOW_MS) applyFacts(cell, facts);
  }
  return cellToJson(cell);
}

function apply(state: AggregateState, blobs: TestBlob[], afterOf: (id: string) => readonly AfterDeploy[]) {
  for (const b of blobs) state.apply(b, afterOf(b._id));
  state.downsample();
  return state;
}

describe('arrival buckets', () => {
  it('count each blob after a deploy once, in any order, with any replay, on any instance; none other (property)', () => {
    fc.assert(
      fc.property(blobList(5, 60), fc.array(fc.nat(3), { minLength: 3, maxLength: 3 }), fc.integer(), fc.nat(), (blobs, assign, seed, cut) => {
        const afterOf = recordsFrom(assign);
        const one = apply(new AggregateState(config), blobs, afterOf);
        // another instance: another order, a replay of a suffix, a restart from JSON midway
        const order = shuffled(blobs, seed);
        const half = Math.min(cut % (order.length + 1), order.length);
        const restarted = AggregateState.fromJSON(
          JSON.parse(JSON.stringify(apply(new AggregateState(config), order.slice(0, half), afterOf).toJSON())),
          config,
        );
        const two = apply(restarted, [...order.slice(Math.max(0, half - 3)), ...order.slice(half)], afterOf);
        expect(JSON.stringify(two.toJSON())).toBe(JSON.stringify(one.toJSON()));
        for (const deploy of [D1, D2]) {
          const bucket = one.arrivals.get(arrivalKey(deploy.id));
          const expected = expectedArrivals(blobs, afterOf, deploy);
          if (bucket) expect(cellToJson(bucket.all)).toEqual(expected);
          else expect(expected).toEqual(cellToJson(emptyCell()));
        }
        // the time buckets hold every blob, after a deploy or not
        const plain = apply(new AggregateState(config), blobs, () => []);
        expect(JSON.stringify({ ...plain.toJSON(), arrivals: undefined })).toBe(JSON.stringify({ ...one.toJSON(), arrivals: undefined }));
      }),
    );
  });

  it('stop at the end of the window after the deploy, and are dropped once kept long enough', () => {
    const state = new AggregateState(config);
    const blob = (id: string, timestamp: number): TestBlob => ({ _id: id, timestamp, event_stream: [['screen.rp_info', 5]] });
    state.apply(blob('2026-10-03T00:00:00.000Z_aaaaaaaaaa-0', D1.at), [D1]);
    state.apply(blob('2026-10-03T00:00:00.000Z_aaaaaaaaaa-1', D1.at + ARRIVAL_WINDOW_MS - 600_000), [D1]);
    state.apply(blob('2026-10-03T00:00:00.000Z_aaaaaaaaaa-2', D1.at + ARRIVAL_WINDOW_MS), [D1]);
    expect(state.arrivals.get(arrivalKey(D1.id))!.all.c[0]).toBe(2);
    expect(state.arrivals.get(arrivalKey(D1.id))).toMatchObject({ start: D1.at, size: 0, deploy: D1.id });
    state.apply(blob('2026-10-20T00:00:00.000Z_aaaaaaaaaa-3', D1.at + ARRIVALS_KEPT_MS + 600_000), []);
    state.downsample();
    expect(state.arrivals.has(arrivalKey(D1.id))).toBe(false);
  });
});
