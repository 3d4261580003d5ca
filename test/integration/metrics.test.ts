// Integration (real parts only): a real `runbook worker` process serves its metrics on a loopback port, runs real
// runbooks on the sshd fleet, and a real Prometheus (/usr/bin/prometheus, scrape every second) scrapes it. Asserted
// through Prometheus' HTTP API: the runs counter, the step and host-lock histograms, the approvals gauge while a
// run waits at its gate; and every metric the shipped Grafana dashboard queries is in the scrape and every one of
// its queries evaluates, so the dashboard cannot rot unnoticed. And what a taken address does: an error when the
// operator chose it, a note (metrics off) when it is the default, so many workers on one machine still start.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DEFAULT_METRICS_ADDRESS } from '../../worker/config';
import { freePort } from '../../common/ports';
import { decideSignal } from '../../workflows/messages';
import type { runbook } from '../../workflows/runbook';
import { fleetDir, temporalAddress, testRoot, uniqueTaskQueue } from '../harness/env';
import { startWorkerProcess, stopProcess } from '../harness/processes';

const PROMETHEUS = process.env.RUNBOOK_TEST_PROMETHEUS ?? '/usr/bin/prometheus';
const DASHBOARD = path.join(__dirname, '..', '..', 'dashboards', 'runbook-engine.json');
const inventory = () => path.join(fleetDir(), 'inventory.yaml');

let worker: ChildProcess | undefined;
let prometheus: ChildProcess | undefined;
let connection: Connection | undefined;
let promUrl = '';
let metricsUrl = '';
let promLog = '';
const tq = uniqueTaskQueue('metrics');

/** Polls `probe` every 500 ms until it returns a value, else fails naming `what` and the last thing seen. */
async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 45_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      const scrape = await fetch(metricsUrl)
        .then((r) => r.text())
        .catch((e: Error) => `(no scrape: ${e.message})`);
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}` +
          `${last ? ` (last error: ${(last as Error).message})` : ''}\n` +
          `--- worker scrape (runbook_* lines) ---\n${scrape
            .split('\n')
            .filter((l) => l.startsWith('runbook_'))
            .join('\n')}\n--- prometheus log (tail) ---\n${promLog.slice(-2000)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

/** An instant query through Prometheus' HTTP API; throws on an error answer. */
async function query(expr: string): Promise<Sample[]> {
  const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = (await res.json()) as { status: string; error?: string; data?: { result: Sample[] } };
  if (body.status !== 'success') throw new Error(`query ${expr} failed: ${body.error ?? res.status}`);
  return body.data!.result;
}

/** The value of a query that returns one series, once it is at least `min`. */
const atLeast = (expr: string, min: number) =>
  eventually(`${expr} >= ${min}`, async () => {
    const [s] = await query(expr);
    return s && Number(s.value[1]) >= min ? Number(s.value[1]) : undefined;
  });

beforeAll(async () => {
  if (!fs.existsSync(PROMETHEUS))
    throw new Error(`${PROMETHEUS} is missing: install the Debian prometheus package (or set RUNBOOK_TEST_PROMETHEUS)`);
  const metricsPort = await freePort();
  metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  worker = await startWorkerProcess(temporalAddress(), tq, {
    RUNBOOK_DIR: path.join(__dirname, '..', 'fixtures', 'runbooks'),
    RUNBOOK_METRICS_ADDRESS: `127.0.0.1:${metricsPort}`,
  });

  const dir = fs.mkdtempSync(path.join(testRoot(), 'prometheus-'));
  const promPort = await freePort();
  promUrl = `http://127.0.0.1:${promPort}`;
  fs.writeFileSync(
    path.join(dir, 'prometheus.yml'),
    [
      'global: { scrape_interval: 1s, evaluation_interval: 1s }',
      'scrape_configs:',
      '  - job_name: runbook-worker',
      `    static_configs: [{ targets: ['127.0.0.1:${metricsPort}'] }]`,
      '',
    ].join('\n'),
  );
  prometheus = spawn(
    PROMETHEUS,
    [
      `--config.file=${path.join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${promPort}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  prometheus.stdout!.on('data', (c: Buffer) => (promLog += c.toString()));
  prometheus.stderr!.on('data', (c: Buffer) => (promLog += c.toString()));
  await eventually('Prometheus to be ready', async () => ((await fetch(`${promUrl}/-/ready`)).ok ? true : undefined));
  connection = await Connection.connect({ address: temporalAddress() });
}, 120_000);

afterAll(async () => {
  if (prometheus) await stopProcess(prometheus);
  if (worker) await stopProcess(worker);
  await connection?.close();
});

test('runs, steps, host locks and pending approvals reach Prometheus', async () => {
  // The worker's own endpoint answers first (a scrape is plain text in the Prometheus format).
  const scrape = await (await fetch(metricsUrl)).text();
  expect(scrape).toContain('# TYPE runbook_audit_write_failures_total counter');
  await atLeast(`up{job="runbook-worker"}`, 1);

  const client = new Client({ connection: connection! });
  const ok = await client.workflow.execute<typeof runbook>('runbook', {
    taskQueue: tq,
    workflowId: `${tq}-touch`,
    args: [{ runbook: 'fleet-touch', params: { note: 'metrics', marker: `${tq}.txt` }, inventory: inventory() }],
  });
  expect(ok.status).toBe('succeeded');

  // A gated run waits for two approvals: the gauge (read from visibility every 15 s) sees it, then it goes on.
  const gated = await client.workflow.start<typeof runbook>('runbook', {
    taskQueue: tq,
    workflowId: `${tq}-gated`,
    args: [{ runbook: 'gated', params: { marker: `${tq}-g.txt` }, inventory: inventory() }],
  });
  await atLeast(`runbook_approvals_pending{taskQueue="${tq}"}`, 1);
  await gated.signal(decideSignal, { id: 'gate', approve: true, by: 'alice' });
  await gated.signal(decideSignal, { id: 'gate', approve: true, by: 'dan', groups: ['dba'] });
  expect((await gated.result()).status).toBe('succeeded');

  const mine = `taskQueue="${tq}"`;
  await atLeast(`sum(runbook_runs_total{${mine}, runbook="fleet-touch", outcome="succeeded", trigger="manual"})`, 1);
  await atLeast(`sum(runbook_runs_total{${mine}, runbook="gated", outcome="succeeded"})`, 1);
  // fleet-touch: 3 hosts x 3 steps that ran (its `skipped` step is not executed, so not observed).
  const sshSteps = await atLeast(
    `sum(runbook_step_duration_seconds_count{${mine}, runbook="fleet-touch", kind="ssh", outcome="succeeded"})`,
    9,
  );
  expect(sshSteps).toBe(9);
  await atLeast(`sum(runbook_step_duration_seconds_bucket{${mine}, runbook="fleet-touch", le="+Inf"})`, 9);
  // One lock per target: fleet-touch's 3 and gated's 1.
  expect(await atLeast(`sum(runbook_host_lock_wait_seconds_count{${mine}})`, 4)).toBe(4);
  // Approved, the gate is left: the next reading of the gauge says so.
  await eventually('the approvals gauge to drop to 0', async () => {
    const [s] = await query(`runbook_approvals_pending{taskQueue="${tq}"}`);
    return s?.value[1] === '0' ? true : undefined;
  });
}, 180_000);

test('every metric the Grafana dashboard queries is scraped, and every query evaluates', async () => {
  const dashboard = JSON.parse(fs.readFileSync(DASHBOARD, 'utf8')) as unknown;
  const exprs: string[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object')
      for (const [k, x] of Object.entries(v)) {
        if ((k === 'expr' || k === 'definition') && typeof x === 'string') exprs.push(x);
        else walk(x);
      }
  };
  walk(dashboard);
  expect(exprs.length).toBeGreaterThan(10);
  const names = [...new Set(exprs.flatMap((e) => e.match(/\b(?:runbook|temporal)_[a-z0-9_]+/g) ?? []))].sort();
  expect(names).toEqual(expect.arrayContaining(['runbook_runs_total', 'runbook_step_duration_seconds_bucket']));

  // The previous test ran runs on this worker; its series are in Prometheus (scraped every second).
  const missing = await eventually('every dashboard metric in the scrape', async () => {
    const res = await fetch(`${promUrl}/api/v1/label/__name__/values?match[]={job="runbook-worker"}`);
    const known = new Set(((await res.json()) as { data: string[] }).data);
    const absent = names.filter((n) => !known.has(n));
    return absent.length === 0 ? absent : undefined;
  }).catch((err: Error) => {
    throw new Error(`dashboards/runbook-engine.json queries metrics the worker does not export. ${err.message}`);
  });
  expect(missing).toEqual([]);

  // Grafana's variables as Grafana would fill them, then every query must evaluate in Prometheus.
  const failed: string[] = [];
  for (const e of exprs.filter((x) => !x.startsWith('label_values('))) {
    const promql = e
      .replace(/\$__rate_interval/g, '1m')
      .replace(/\$__range/g, '10m')
      .replace(/\$runbook/g, '.*');
    await query(promql).catch((err: Error) => failed.push(err.message));
  }
  expect(failed).toEqual([]);
});

test('a taken address: an error when chosen, a note and no metrics when it is the default', async () => {
  const bin = path.join(__dirname, '..', '..', 'bin', 'runbook.js');
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  const taken = `127.0.0.1:${(blocker.address() as net.AddressInfo).port}`;
  // The default port: held here, unless another process (a `runbook dev`) holds it already, which serves as well.
  const [host, port] = DEFAULT_METRICS_ADDRESS.split(':') as [string, string];
  const defaultHolder = net.createServer();
  await new Promise<void>((r) => {
    defaultHolder.once('error', () => r());
    defaultHolder.listen(Number(port), host, r);
  });
  try {
    const chosen = spawnSync('node', [bin, 'worker', '--metrics', taken], {
      encoding: 'utf8',
      env: { ...process.env, TEMPORAL_ADDRESS: temporalAddress(), RUNBOOK_TASK_QUEUE: uniqueTaskQueue('metrics-busy') },
    });
    expect(chosen.stderr).toBe(
      `runbook: Cannot serve Prometheus metrics on ${taken} (--metrics): the address is already in use, probably by ` +
        'another runbook worker. Choose another address with --metrics or RUNBOOK_METRICS_ADDRESS, or set it to off.\n',
    );
    expect(chosen.status).toBe(2);

    const fallback = spawn('node', [bin, 'worker'], {
      env: {
        ...process.env,
        TEMPORAL_ADDRESS: temporalAddress(),
        RUNBOOK_TASK_QUEUE: uniqueTaskQueue('metrics-default'),
        RUNBOOK_METRICS_ADDRESS: '',
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    fallback.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    try {
      await eventually('the worker on the default address to poll', async () =>
        out.includes('Worker       polling') ? true : undefined,
      );
      expect(out).toContain(
        `  Metrics      off: ${DEFAULT_METRICS_ADDRESS} is in use (another runbook worker?); choose another address ` +
          'with --metrics or RUNBOOK_METRICS_ADDRESS\n',
      );
    } finally {
      await stopProcess(fallback, 'SIGINT');
    }
  } finally {
    blocker.close();
    defaultHolder.close();
  }
});
