/**
 * Load from a separate process: runs autocannon against the URL the parent sends over IPC and sends
 * back the figures, so the measured process only serves (bench/access.ts).
 */
import autocannon from 'autocannon';

interface Job {
  url: string;
  headers: Record<string, string>;
  connections: number;
  duration: number;
  warmupSeconds: number;
}

process.once('message', async (job: Job) => {
  const { url, headers, connections, duration, warmupSeconds } = job;
  if (warmupSeconds > 0) await autocannon({ url, headers, connections, duration: warmupSeconds });
  const result = await autocannon({ url, headers, connections, duration });
  process.send?.({
    reqPerSec: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
  });
  process.disconnect?.();
});
