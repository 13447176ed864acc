/**
 * Metrics of the Node.js process: memory, CPU, event-loop delay, uptime.
 * Names follow the ones Prometheus' own client libraries use (`process_…`,
 * `nodejs_…`), so existing dashboards read them as they are.
 *
 * Memory is read once per scrape. The event-loop delay is sampled by
 * `perf_hooks.monitorEventLoopDelay` every 10 ms and reported over the time
 * since the previous scrape, then restarted. Its samples are the time
 * between two ticks of that 10 ms timer, so the 10 ms are taken off: an idle
 * loop reads about 0, not 0.01.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { MetricsRegistry } from './registry.js';

const NS = 1e9;
const RESOLUTION_MS = 10;
/** Seconds of delay in a sample of the sampler, beyond its own interval. */
const delaySeconds = (ns: number) => Math.max(0, ns - RESOLUTION_MS * 1e6) / NS;

/**
 * Registers the process metrics; returns what stops the event-loop sampler.
 *
 * @example
 * const stop = registerProcessMetrics(registry, '0.1.0');
 * app.addHook('onClose', async () => stop());
 */
export function registerProcessMetrics(registry: MetricsRegistry, version: string): () => void {
  const loop = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  loop.enable();
  const startSeconds = Date.now() / 1000 - process.uptime();
  let memory = process.memoryUsage();
  let lag: { mean: number; p50: number; p99: number; max: number } | undefined;

  registry.beforeScrape(() => {
    memory = process.memoryUsage();
    lag =
      loop.count > 0
        ? { mean: delaySeconds(loop.mean), p50: delaySeconds(loop.percentile(50)), p99: delaySeconds(loop.percentile(99)), max: delaySeconds(loop.max) }
        : undefined;
    loop.reset();
  });

  registry.gauge(
    'kpi_build_info',
    'Always 1; the labels say which kpi-live and Node.js run.',
    () => [{ labels: { version, node: process.version }, value: 1 }],
    ['version', 'node'],
  );
  registry.gauge('process_resident_memory_bytes', 'Resident set size of the process.', () => memory.rss);
  registry.gauge('nodejs_heap_size_used_bytes', 'V8 heap in use.', () => memory.heapUsed);
  registry.gauge('nodejs_heap_size_total_bytes', 'V8 heap allocated.', () => memory.heapTotal);
  registry.gauge('nodejs_external_memory_bytes', 'Memory of C++ objects bound to JavaScript (buffers included).', () => memory.external);
  registry.counterFrom('process_cpu_seconds_total', 'CPU time of the process, user and system.', () => {
    const cpu = process.cpuUsage();
    return (cpu.user + cpu.system) / 1e6;
  });
  registry.gauge('nodejs_eventloop_lag_mean_seconds', 'Mean event-loop delay since the previous scrape.', () => lag?.mean);
  registry.gauge('nodejs_eventloop_lag_p50_seconds', 'Median event-loop delay since the previous scrape.', () => lag?.p50);
  registry.gauge('nodejs_eventloop_lag_p99_seconds', '99th percentile of the event-loop delay since the previous scrape.', () => lag?.p99);
  registry.gauge('nodejs_eventloop_lag_max_seconds', 'Longest event-loop delay since the previous scrape.', () => lag?.max);
  registry.gauge('process_start_time_seconds', 'When the process started, in seconds since the Unix epoch.', () => startSeconds);
  registry.gauge('process_uptime_seconds', 'How long the process has run.', () => process.uptime());

  return () => loop.disable();
}
