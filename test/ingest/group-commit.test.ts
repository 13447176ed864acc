import { afterEach, describe, expect, it, vi } from 'vitest';
import fc from 'fast-check';
import { CommitRefusedError, DocumentWriteError, GroupCommitter, type BulkDocResult } from '../../src/ingest/group-commit.js';

interface Doc {
  _id: string;
}

const docs = (prefix: string, n: number): Doc[] => Array.from({ length: n }, (_, i) => ({ _id: `${prefix}-${i}` }));

/** A writer that records every write and answers when the test says so. */
function controlledWriter() {
  const writes: { docs: Doc[]; answer: (results?: BulkDocResult[]) => void; fail: (err: Error) => void }[] = [];
  const write = (batch: Doc[]) =>
    new Promise<BulkDocResult[]>((resolve, reject) => {
      writes.push({
        docs: batch,
        answer: (results) => resolve(results ?? batch.map((d) => ({ id: d._id, ok: true }))),
        fail: reject,
      });
    });
  return { writes, write };
}

const flushMicrotasks = () => new Promise((r) => setImmediate(r));

/** Occupies a write slot, so that what follows has to gather. */
function occupy(committer: GroupCommitter<Doc>): Promise<number> {
  return committer.submit(docs('blocker', 1));
}

afterEach(() => {
  vi.useRealTimers();
});

describe('GroupCommitter', () => {
  it('coalesces concurrent requests into one write and answers each with its own count', async () => {
    const { writes, write } = controlledWriter();
    const committer = new GroupCommitter<Doc>({ write, maxBatchDocs: 100, maxWaitMs: 0, maxInFlight: 1, maxQueuedDocs: 1000 });
    const blocker = occupy(committer);
    const answers = [committer.submit(docs('a', 3)), committer.submit(docs('b', 1)), committer.submit(docs('c', 2))];
    await flushMicrotasks();
    expect(writes).toHaveLength(1);
    writes[0]!.answer();
    await blocker;
    await flushMicrotasks();
    expect(writes).toHaveLength(2);
    expect(writes[1]!.docs.map((d) => d._id)).toEqual(['a-0', 'a-1', 'a-2', 'b-0', 'c-0', 'c-1']);
    writes[1]!.answer();
    expect(await Promise.all(answers)).toEqual([3, 1, 2]);
    expect(committer.stats).toMatchObject({ writes: 2, docsWritten: 7, queuedDocs: 0, inFlight: 0 });
  });

  it('writes at once when no write is running', async () => {
    vi.useFakeTimers();
    const { writes, write } = controlledWriter();
    const committer = new GroupCommitter<Doc>({ write, maxBatchDocs: 100, maxWaitMs: 10_000, maxInFlight: 2, maxQueuedDocs: 1000 });
    void committer.submit(docs('a', 1));
    expect(writes).toHaveLength(1);
  });

  it('flushes at once when a batch is full, without waiting for the timer', async () => {
    vi.useFakeTimers();
    const { writes, write } = controlledWriter();
    const committer = new GroupCommitter<Doc>({ write, maxBatchDocs: 4, maxWaitMs: 10_000, maxInFlight: 2, maxQueuedDocs: 1000 });
    void occupy(committer);
    void committer.submit(docs('a', 2));
    expect(writes).toHaveLength(1);
    void committer.submit(docs('b', 2));
    expect(writes).toHaveLength(2);
    expect(writes[1]!.docs).toHaveLength(4);
  });

  it('flushes a partial batch when its oldest blob has waited maxWaitMs', async () => {
    vi.useFakeTimers();
    const { writes, write } = controlledWriter();
    const committer = new GroupCommitter<Doc>({ write, maxBatchDocs: 100, maxWaitMs: 20, maxInFlight: 2, maxQueuedDocs: 1000 });
    void occupy(committer);
    void committer.submit(docs('a', 1));
    vi.advanceTimersByTime(19);
    expect(writes).toHaveLength(1);
    void committer.submit(docs('b', 1));
    vi.advanceTimersByTime(1);
    expect(writes).toHaveLength(2);
    expect(writes[1]!.docs).toHaveLength(2);
  });

  it('never splits a request across writes, even one larger than a batch', async () => {
    const { writes, write } = controlledWriter();
    const committer = new GroupCommitter<Doc>({ write, maxBatchDocs: 3, maxWaitMs: 0, maxInFlight: 4, maxQueuedDocs: 1000 });
    void committer.submit(docs('a', 2));
    void committer.submit(docs('b', 5));
    void committer.submit(docs('c', 1));
    await flushMicrotasks();
    expect(writes.map((w) => w.docs.map((d) => d._id.split('-')[0]).join(''))).toEqual(['aa', 'bbbbb', 'c']);
  });

  it('keeps at most maxInFlight writes running; waiting blobs form the next batch', async () => {
    const { writes, write } = controlledWriter();
    const committer = new GroupCommitter<Doc>({ write, maxBatchDocs: 2, maxWaitMs: 0, maxInFlight: 1, maxQueuedDocs: 1000 });
    const answers = ['a', 'b', 'c', 'd', 'e'].map((p) => committer.submit(docs(p, 1)));
    await flushMicrotasks();
    expect(writes).toHaveLength(1);
    writes[0]!.answer();
    await flushMicrotasks();
    expect(writes).toHaveLength(2);
    writes[1]!.answer();
    await flushMicrotasks();
    writes[2]!.answer();
    expect(await Promise.all(answers)).toEqual([1, 1, 1, 1, 1]);
    // the first goes at once; the others gather while a write runs
    expect(writes.map((w) => w.docs.length)).toEqual([1, 2, 2]);
  });

  it('routes per-document failures to the request that sent them, whatever the order of results', async () => {
    const { writes, write } = controlledWriter();
    const committer = new GroupCommitter<Doc>({ write, maxBatchDocs: 100, maxWaitMs: 0, maxInFlight: 1, maxQueuedDocs: 1000 });
    const blocker = occupy(committer);
    const good = committer.submit(docs('good', 2));
    const bad = committer.submit(docs('bad', 2));
    writes[0]!.answer();
    await blocker;
    await flushMicrotasks();
    writes[1]!.answer([
      { id: 'bad-1', error: 'forbidden', reason: 'nope' },
      { id: 'good-1', ok: true },
      { id: 'bad-0', ok: true },
      { id: 'good-0', ok: true },
    ]);
    expect(await good).toBe(2);
    const err = await bad.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DocumentWriteError);
    expect((err as DocumentWriteError).failures).toEqual([{ id: 'bad-1', error: 'forbidden: nope' }]);
    expect((err as DocumentWriteError).unavailable).toBe(true);
  });

  it('fails every request of a failed write and goes on with the next', async () => {
    const { writes, write } = controlledWriter();
    const committer = new GroupCommitter<Doc>({ write, maxBatchDocs: 2, maxWaitMs: 0, maxInFlight: 1, maxQueuedDocs: 1000 });
    const blocker = occupy(committer);
    const first = [committer.submit(docs('a', 1)), committer.submit(docs('b', 1))];
    const later = committer.submit(docs('c', 1));
    writes[0]!.answer();
    await blocker;
    await flushMicrotasks();
    expect(writes[1]!.docs.map((d) => d._id)).toEqual(['a-0', 'b-0']);
    writes[1]!.fail(new Error('store down'));
    for (const p of first) await expect(p).rejects.toThrow('store down');
    await flushMicrotasks();
    writes[2]!.answer();
    expect(await later).toBe(1);
  });

  it('refuses at once when the queue is full, and accepts again once it drains', async () => {
    const { writes, write } = controlledWriter();
    const committer = new GroupCommitter<Doc>({ write, maxBatchDocs: 1000, maxWaitMs: 10_000, maxInFlight: 1, maxQueuedDocs: 5 });
    const blocker = occupy(committer);
    const waiting = committer.submit(docs('a', 4));
    expect(() => committer.submit(docs('b', 2))).toThrow(CommitRefusedError);
    writes[0]!.answer();
    await blocker;
    await flushMicrotasks();
    writes[1]!.answer();
    expect(await waiting).toBe(4);
    const again = committer.submit(docs('b', 2));
    writes[2]!.answer();
    expect(await again).toBe(2);
  });

  it('close() writes what waits, answers every accepted request, then refuses new ones', async () => {
    const { writes, write } = controlledWriter();
    const committer = new GroupCommitter<Doc>({ write, maxBatchDocs: 1000, maxWaitMs: 60_000, maxInFlight: 1, maxQueuedDocs: 1000 });
    const accepted = committer.submit(docs('a', 3));
    const closed = committer.close();
    expect(writes).toHaveLength(1);
    expect(() => committer.submit(docs('late', 1))).toThrow(CommitRefusedError);
    let done = false;
    void closed.then(() => (done = true));
    await flushMicrotasks();
    expect(done).toBe(false);
    writes[0]!.answer();
    await closed;
    expect(await accepted).toBe(3);
  });

  it('writes every submitted document exactly once, in batches within bounds (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 1, max: 10 }),
        fc.integer({ min: 1, max: 3 }),
        async (sizes, maxBatchDocs, maxInFlight) => {
          const written: string[] = [];
          const batchSizes: number[] = [];
          const committer = new GroupCommitter<Doc>({
            write: async (batch) => {
              await new Promise((r) => setImmediate(r));
              written.push(...batch.map((d) => d._id));
              batchSizes.push(batch.length);
              return batch.map((d) => ({ id: d._id, ok: true }));
            },
            maxBatchDocs,
            maxWaitMs: 0,
            maxInFlight,
            maxQueuedDocs: 10_000,
          });
          const answers = await Promise.all(sizes.map((n, i) => committer.submit(docs(`r${i}`, n))));
          expect(answers).toEqual(sizes);
          expect(written.sort()).toEqual(sizes.flatMap((n, i) => docs(`r${i}`, n).map((d) => d._id)).sort());
          // a batch exceeds the bound only when one request alone does
          for (const size of batchSizes) expect(size <= maxBatchDocs || sizes.includes(size)).toBe(true);
        },
      ),
      { numRuns: 100 },
    );
  });
});
