/**
 * Connect clients in a process of their own (bench/time-to-authenticated.ts, bench/scale.ts): the parent sends a job
 * over IPC; this process starts attempts as a client following the docs does (`POST /api/authenticate`, then
 * long-polls `GET …?wait=30&state=pending` until `completed_success`) and sends back the timings.
 */
import { percentile, pool } from './support.js';

type Method = 'raw_data' | 'email_password';
export interface ConnectJob {
  base: string;
  apiKey: string;
  sandboxUrl: string;
  method: Method;
  count: number;
  concurrency: number;
  /** Prefix of the sandbox identities (distinct per job, so no login lock or session is shared). */
  tag: string;
}
export interface ConnectResult {
  /** Completed connects per second over the whole job. */
  perSecond: number;
  startP50: number;
  p50: number;
  p99: number;
  max: number;
  polls: number;
}
export interface LatencyJob {
  latencyOf: string;
  count: number;
}

const USER_AGENT = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36 fangate-bench';

async function json(url: string, init: RequestInit = {}): Promise<{ status: number; body: any }> {
  const response = await fetch(url, init);
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

async function runConnects(job: ConnectJob): Promise<ConnectResult> {
  const auth = { authorization: `Bearer ${job.apiKey}` };
  let serial = 0;
  // What the client knows before it starts (outside the timing): credentials, or a session copied from the browser.
  const bodies = await pool(job.count, 8, async () => {
    const i = serial++;
    if (job.method === 'email_password') return { auth_type: 'email_password', email: `${job.tag}-${i}@sandbox.test`, password: 'password' };
    const minted = await json(`${job.sandboxUrl}/__sandbox/sessions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ platform: 'onlyfans', email: `${job.tag}-${i}@sandbox.test`, user_agent: USER_AGENT }),
    });
    if (minted.status !== 200) throw new Error(`sandbox session mint answered ${minted.status}: ${JSON.stringify(minted.body)}`);
    const { auth_id, cookies, xbc, user_agent } = minted.body;
    return { auth_type: 'raw_data', auth_id, cookies, xbc, user_agent };
  });
  const t0 = performance.now();
  const samples = await pool(job.count, job.concurrency, async (i) => {
    const s0 = performance.now();
    const started = await json(`${job.base}/api/authenticate`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(bodies[i]) });
    const start = performance.now() - s0;
    if (started.status !== 200) throw new Error(`start (${job.method}) answered ${started.status}: ${JSON.stringify(started.body)}`);
    let state: string = started.body.state;
    let polls = 0;
    while (state === 'pending') {
      if (++polls > 10) throw new Error(`attempt ${started.body.attempt_id} still pending after 10 long-polls`);
      const { status, body } = await json(`${job.base}/api/authenticate/${started.body.attempt_id}?wait=30&state=pending`, { headers: auth });
      if (status !== 200) throw new Error(`poll answered ${status}: ${JSON.stringify(body)}`);
      state = body.state;
      if (state !== 'pending' && state !== 'completed_success') throw new Error(`${job.method} attempt ended ${state}: ${JSON.stringify(body.error)}`);
    }
    return { start, total: performance.now() - s0, polls };
  });
  const wall = (performance.now() - t0) / 1000;
  const totals = samples.map((s) => s.total);
  return {
    perSecond: job.count / wall,
    startP50: percentile(samples.map((s) => s.start), 50),
    p50: percentile(totals, 50),
    p99: percentile(totals, 99),
    max: Math.max(...totals),
    polls: samples.reduce((sum, s) => sum + s.polls, 0) / samples.length,
  };
}

/** Sequential GETs: the round-trip floor of the same run. */
async function latency(job: LatencyJob): Promise<{ p50: number; p99: number }> {
  const samples: number[] = [];
  for (let i = 0; i < job.count; i++) {
    const t0 = performance.now();
    await (await fetch(job.latencyOf)).arrayBuffer();
    samples.push(performance.now() - t0);
  }
  return { p50: percentile(samples, 50), p99: percentile(samples, 99) };
}

/** Parks attempts on needs_otp: `park-<tag>-<i>+sms@sandbox.test` each, started and long-polled until parked. */
export interface ParkJob {
  park: number;
  base: string;
  apiKey: string;
  concurrency: number;
  tag: string;
}
async function park(job: ParkJob): Promise<{ perSecond: number; p50: number; p99: number }> {
  const auth = { authorization: `Bearer ${job.apiKey}` };
  const t0 = performance.now();
  const latencies = await pool(job.park, job.concurrency, async (i) => {
    const s0 = performance.now();
    const started = await json(`${job.base}/api/authenticate`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ auth_type: 'email_password', email: `park-${job.tag}-${i}+sms@sandbox.test`, password: 'password' }),
    });
    if (started.status !== 200) throw new Error(`start ${i} answered ${started.status}: ${JSON.stringify(started.body)}`);
    for (let polls = 0; polls < 20; polls++) {
      const { status, body } = await json(`${job.base}/api/authenticate/${started.body.attempt_id}?wait=30&state=pending`, { headers: auth });
      if (status !== 200) throw new Error(`poll answered ${status}: ${JSON.stringify(body)}`);
      if (body.state === 'needs_otp') return performance.now() - s0;
      if (body.state !== 'pending') throw new Error(`attempt ${started.body.attempt_id} ended ${body.state}: ${JSON.stringify(body.error)}`);
    }
    throw new Error(`attempt ${started.body.attempt_id} still pending after 20 long-polls`);
  });
  return { perSecond: job.park / ((performance.now() - t0) / 1000), p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

process.on('message', (job: ConnectJob | LatencyJob | ParkJob) => {
  const work = 'latencyOf' in job ? latency(job) : 'park' in job ? park(job) : runConnects(job);
  work.then(
    (result) => process.send?.({ ok: result }),
    (error: Error) => process.send?.({ error: error.stack ?? error.message }),
  );
});
process.once('disconnect', () => process.exit(0));
