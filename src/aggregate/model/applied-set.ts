/**
 * Which blobs the aggregate has counted: the heart of exactly-once counting
 * on an at-least-once feed.
 *
 * CouchDB's `_changes` feed may deliver a change again (a restart from an
 * older checkpoint, a clustered node rewinding, a replay from 0). A blob id is
 * `<time>_<run>-<counter>` (src/store/blob-ids.ts): each ingest run numbers
 * the blobs it writes 0, 1, 2, … So the counted blobs of a run are a set of
 * integers that is, in practice, one range with a few holes (blobs of a
 * failed write, or still on their way), and this set keeps them as sorted,
 * disjoint ranges. Its size grows with ingest restarts and failed writes, not
 * with the number of blobs: a million blobs from one run are one range.
 *
 * Ingest gives no other ids; a document of a blob's shape under another id
 * (written straight to the store) is remembered exactly, by id.
 */
import { runAndCounter } from '../../store/blob-ids.js';

export interface AppliedSetJson {
  runs: Record<string, number[]>;
  foreign: string[];
}

export class AppliedSet {
  /** Per run: flat [start0, end0, start1, end1, …], half-open, sorted, not touching. */
  #runs = new Map<string, number[]>();
  #foreign = new Set<string>();

  /** Marks a blob as counted; false if it already was. */
  add(id: string): boolean {
    const parsed = runAndCounter(id);
    if (!parsed) {
      if (this.#foreign.has(id)) return false;
      this.#foreign.add(id);
      return true;
    }
    let ranges = this.#runs.get(parsed.run);
    if (!ranges) {
      ranges = [];
      this.#runs.set(parsed.run, ranges);
    }
    return insert(ranges, parsed.counter);
  }

  has(id: string): boolean {
    const parsed = runAndCounter(id);
    if (!parsed) return this.#foreign.has(id);
    const ranges = this.#runs.get(parsed.run);
    if (!ranges) return false;
    const i = firstStartAfter(ranges, parsed.counter);
    return i > 0 && parsed.counter < ranges[2 * (i - 1) + 1]!;
  }

  /** Runs, ranges and foreign ids held: what memory this costs. */
  get size(): { runs: number; ranges: number; foreign: number } {
    let ranges = 0;
    for (const r of this.#runs.values()) ranges += r.length / 2;
    return { runs: this.#runs.size, ranges, foreign: this.#foreign.size };
  }

  toJSON(): AppliedSetJson {
    const runs: Record<string, number[]> = {};
    for (const run of [...this.#runs.keys()].sort()) runs[run] = [...this.#runs.get(run)!];
    return { runs, foreign: [...this.#foreign].sort() };
  }

  static fromJSON(json: AppliedSetJson): AppliedSet {
    const set = new AppliedSet();
    for (const [run, ranges] of Object.entries(json.runs)) set.#runs.set(run, [...ranges]);
    for (const id of json.foreign) set.#foreign.add(id);
    return set;
  }
}

/** Index (in range pairs) of the first range starting after x. */
function firstStartAfter(ranges: number[], x: number): number {
  let lo = 0;
  let hi = ranges.length / 2;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ranges[2 * mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function insert(ranges: number[], x: number): boolean {
  const i = firstStartAfter(ranges, x);
  const prevEnd = i > 0 ? ranges[2 * (i - 1) + 1]! : undefined;
  if (prevEnd !== undefined && x < prevEnd) return false;
  const joinsPrev = prevEnd === x;
  const joinsNext = i < ranges.length / 2 && ranges[2 * i] === x + 1;
  if (joinsPrev && joinsNext) {
    ranges[2 * (i - 1) + 1] = ranges[2 * i + 1]!;
    ranges.splice(2 * i, 2);
  } else if (joinsPrev) {
    ranges[2 * (i - 1) + 1] = x + 1;
  } else if (joinsNext) {
    ranges[2 * i] = x;
  } else {
    ranges.splice(2 * i, 0, x, x + 1);
  }
  return true;
}
