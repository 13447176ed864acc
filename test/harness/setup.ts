/**
 * Runs in every test file (vitest `setupFiles`): after the file, any kpi-live
 * process a test started and did not stop is killed and named.
 */
import { afterAll } from 'vitest';
import { killRunning } from './process.js';

afterAll(() => {
  const killed = killRunning();
  if (killed > 0) console.log(`[kpi-live tests] killed ${killed} kpi-live process(es) a test left running`);
});
