/**
 * Server-side sampling (privacy review: "we reserve the right to sample"),
 * on top of the client's own `sample_rate`.
 *
 * The decision is a pure function of the blob's content: a dialog that
 * retries the same blob (from local storage, after a failure) gets the same
 * answer, so retries neither add nor lose samples. A kept blob's
 * `sample_rate` becomes client rate × server rate, so every count scaled by
 * 1/sample_rate stays an unbiased estimate, and answers say they are
 * estimates (`Kpis.sampled`).
 */
import { createHash } from 'node:crypto';
import type { NewBlobDoc } from './blob.js';

/** A number in [0, 1) from the blob's content (its first 52 bits of SHA-256). */
export function sampleKey(doc: NewBlobDoc): number {
  const digest = createHash('sha256').update(JSON.stringify(doc)).digest();
  return (digest.readUIntBE(0, 6) * 16 + (digest[6]! >> 4)) / 2 ** 52;
}

/**
 * The blob to store under the server's sample rate, or undefined when it is
 * sampled out.
 *
 * @example
 * sampled(doc, 1); // doc, unchanged
 * sampled({ ...doc, sample_rate: 0.5 }, 0.1); // undefined, or the doc with sample_rate 0.05
 */
export function sampled(doc: NewBlobDoc, rate: number): NewBlobDoc | undefined {
  if (rate >= 1) return doc;
  if (sampleKey(doc) >= rate) return undefined;
  return { ...doc, sample_rate: (doc.sample_rate ?? 1) * rate };
}
