// Benchmark: alert webhook received -> first remote command started, with real parts: an in-memory dev server (or
// SQLite with --db), a real sshd fleet, a `runbook worker` process and a `runbook serve` receiver process.
//
// Each alert is an Alertmanager v4 webhook with its own fingerprint (so each starts a run of
// bench/runbooks/alert-bench.yaml on the host its `instance` label names, round-robin over the fleet). That
// runbook's first command appends `NANOSECONDS FINGERPRINT` to ~/alert-bench.log on the host; the fleet's hosts are
// local users on loopback, so the host's clock is this machine's and the file is read straight from their homes.
// Latency = that time - the time this process started sending the request. Alerts go one at a time (each sent
// `--gap` ms after the previous answer) so what is measured is latency, not queueing; `--burst` sends them all at
// once instead. Afterwards every alert's path is cut into phases from the Temporal histories of its guard and its
// run (server event times, same clock) and the phases' distributions are printed beside the totals.
//
// Usage (root, needs openssh-server):
//   npm run bench -- alerts [--alerts 200] [--gap 150] [--burst] [--hosts 5] [--warmup N] [--db]
// RUNBOOK_BENCH_KEEP=1 keeps the temp dir (receiver and worker logs, the audit trail, per-alert samples and the guard's
// histories as JSON). RUNBOOK_BENCH_SERVER_ARGS adds dev server arguments for experiments, e.g.
// '--dynamic-config-value history.transferProcessorMaxPollRPS=1000' (the 1-shard dev server reads its transfer queue at
// most 20 times a second by default, which puts up to 50 ms on each of the ~7 server hops on an alert's way).
// At least 200 alerts for figures worth quoting (the issue's sample size); fewer are for trying the bench out.
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Client, Connection } from '@temporalio/client';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { dataConverterFromEnv } from '../common/codec';
import { freePort } from '../common/ports';
import { fleetDown, fleetUp, type FleetState } from '../fleet/fleet';
import { startDevServer } from '../worker/dev-server';
import { ensureTemporalCli } from '../worker/temporal-cli';
import { guardId, remediationId } from '../workflows/guard-state';

const ROOT = path.join(__dirname, '..', '..');
const RUNBOOK = 'alert-bench';
const ALERTNAME = 'RunbookBenchAlert';
const LOG_FILE = 'alert-bench.log';
const TASK_QUEUE = 'bench-alerts';
const EventType = temporal.api.enums.v1.EventType;
type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

export interface AlertBenchOptions {
  /** Measured alerts (distinct fingerprints). @default 200 */
  alerts: number;
  /** Pause between an answer and the next alert, in ms (sequential mode). @default 150 */
  gapMs: number;
  /** Send every alert at once instead of one at a time. */
  burst: boolean;
  /** Fleet size; alerts go round-robin over its hosts. @default 5 */
  hosts: number;
  /** Alerts sent (and waited for) before the measured ones; not counted. @default 2 per host */
  warmup: number;
  /** Dev server on SQLite (WAL) in the temp dir, as `runbook dev` runs it, instead of in memory. */
  db: boolean;
}

/** Options from the bench's command line (`alerts` already taken off). */
export function alertBenchOptions(argv: string[]): AlertBenchOptions {
  const num = (flag: string, dflt: number, min: number, max: number) => {
    const i = argv.indexOf(flag);
    const v = i >= 0 ? Number(argv[i + 1]) : dflt;
    return Number.isFinite(v) ? Math.min(max, Math.max(min, Math.round(v))) : dflt;
  };
  const hosts = num('--hosts', 5, 1, 50);
  return {
    alerts: num('--alerts', 200, 1, 5000),
    gapMs: num('--gap', 150, 0, 10_000),
    burst: argv.includes('--burst'),
    hosts,
    warmup: num('--warmup', 2 * hosts, 0, 500),
    db: argv.includes('--db'),
  };
}

/** Wall-clock time in ms with sub-ms resolution (comparable with the hosts' `date +%s%N`). */
const nowMs = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

interface Dist {
  n: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  min: number;
}
function dist(xs: number[]): Dist | undefined {
  if (xs.length === 0) return undefined;
  const r = (v: number) => Math.round(v * 10) / 10;
  return {
    n: xs.length,
    mean: r(mean(xs)),
    p50: r(pct(xs, 50)),
    p90: r(pct(xs, 90)),
    p99: r(pct(xs, 99)),
    max: r(Math.max(...xs)),
    min: r(Math.min(...xs)),
  };
}

// ---- processes -------------------------------------------------------------------------------------------------

/** Spawns `runbook ARGS` and resolves once its stdout shows `ready`; stderr goes to `logFile`. */
async function spawnRunbook(
  args: string[],
  env: NodeJS.ProcessEnv,
  ready: string,
  logFile: string,
  what: string,
): Promise<ChildProcess> {
  const log = fs.openSync(logFile, 'a');
  const child = spawn(
    'node',
    [
      ...(process.env.RUNBOOK_BENCH_WORKER_NODE_ARGS ?? '').split(' ').filter(Boolean),
      path.join(ROOT, 'bin', 'runbook.js'),
      ...args,
    ],
    { env, stdio: ['ignore', 'pipe', log] },
  );
  fs.closeSync(log);
  let out = '';
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${what} did not start within 60 s (see ${logFile})`)), 60_000);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`${what} exited with ${code} before it was ready (see ${logFile})`));
      });
      child.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes(ready)) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  child.stdout!.resume();
  return child;
}

async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

/** CPU seconds a process has used (user + system), or NaN once it is gone. */
function cpuSeconds(pid: number | undefined): number {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime (fields 14, 15) in USER_HZ ticks
  } catch {
    return NaN;
  }
}

/**
 * CPU seconds used by the fleet's sshd trees (the sshd of each host, its sessions, their shells and commands): own
 * time of the living processes plus what they reaped from exited children.
 */
function fleetCpuSeconds(fleet: FleetState): number {
  const stats = new Map<number, { ppid: number; ticks: number }>();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const f = fs.readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1]!.split(' ');
      stats.set(Number(d), {
        ppid: Number(f[1]),
        ticks: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]),
      });
    } catch {
      // gone
    }
  }
  const roots = new Set<number>();
  for (const h of fleet.hosts) {
    try {
      roots.add(Number(fs.readFileSync(path.join(h.dir, 'sshd.pid'), 'utf8').trim()));
    } catch {
      // not running
    }
  }
  let ticks = 0;
  for (const [pid, st] of stats) {
    for (let p = pid, hops = 0; p > 1 && hops < 64; p = stats.get(p)?.ppid ?? 0, hops++)
      if (roots.has(p)) {
        ticks += st.ticks;
        break;
      }
  }
  return ticks / 100;
}

/** The machine's CPU counters (all CPUs, USER_HZ ticks): busy, steal, and the total. */
function machineCpu(): { busy: number; steal: number; total: number } {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
  return { busy: user + nice + system + irq + softirq, steal, total: f.reduce((a, b) => a + b, 0) };
}

/** Time some task waited for a CPU (PSI `some`), in ms since boot; NaN without PSI. */
function cpuPressureMs(): number {
  try {
    const m = /^some .*total=(\d+)/m.exec(fs.readFileSync('/proc/pressure/cpu', 'utf8'));
    return m ? Number(m[1]) / 1000 : NaN;
  } catch {
    return NaN;
  }
}

// ---- alerts ----------------------------------------------------------------------------------------------------

interface Sample {
  index: number;
  fingerprint: string;
  host: string;
  sentMs: number;
  answeredMs?: number;
  status?: number;
  outcome?: string;
  workflowId?: string;
  error?: string;
  /** When the run's first command started on the host. */
  commandMs?: number;
}

function alertBody(fingerprint: string, host: string, index: number, alertname = ALERTNAME): string {
  const labels = { alertname, instance: host, severity: 'page', bench: String(index) };
  return JSON.stringify({
    version: '4',
    groupKey: `{}:{alertname="${alertname}"}`,
    truncatedAlerts: 0,
    status: 'firing',
    receiver: 'runbook',
    groupLabels: { alertname },
    commonLabels: labels,
    commonAnnotations: { summary: 'bench' },
    externalURL: 'http://127.0.0.1:9093',
    alerts: [
      {
        status: 'firing',
        labels,
        annotations: { summary: 'bench' },
        startsAt: new Date().toISOString(),
        endsAt: '0001-01-01T00:00:00Z',
        generatorURL: 'http://127.0.0.1:9090/graph',
        fingerprint,
      },
    ],
  });
}

/** POSTs one alert; fills in the sample's answer (never throws). */
function post(agent: http.Agent, url: URL, token: string, s: Sample, alertname?: string): Promise<void> {
  const body = alertBody(s.fingerprint, s.host, s.index, alertname);
  return new Promise<void>((resolve) => {
    const done = (status: number | undefined, text: string, error?: string) => {
      s.answeredMs = nowMs();
      s.status = status;
      if (error) s.error = error;
      try {
        const r = JSON.parse(text) as { results?: { outcome?: string; workflowId?: string }[]; error?: string };
        s.outcome = r.results?.[0]?.outcome;
        s.workflowId = r.results?.[0]?.workflowId;
        if (status !== 200 && r.error) s.error = r.error.slice(0, 300);
      } catch {
        if (status !== 200 && !s.error) s.error = text.slice(0, 300);
      }
      resolve();
    };
    s.sentMs = nowMs();
    const req = http.request(
      url,
      {
        method: 'POST',
        agent,
        timeout: 30_000,
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => done(res.statusCode, text));
        res.on('error', (err) => done(res.statusCode, text, err.message));
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer within 30 s')));
    req.on('error', (err) => done(undefined, '', err.message));
    req.end(body);
  });
}

/** The first-command times recorded on the hosts, by fingerprint (the first line of each, in ms). */
function readMarks(fleet: FleetState): Map<string, number> {
  const marks = new Map<string, number>();
  for (const h of fleet.hosts) {
    let text = '';
    try {
      text = fs.readFileSync(path.join(h.home, LOG_FILE), 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const m = /^(\d{19}) (\S+)$/.exec(line.trim());
      if (!m || marks.has(m[2]!)) continue;
      const ns = BigInt(m[1]!);
      marks.set(m[2]!, Number(ns / 1000n) / 1000);
    }
  }
  return marks;
}

/** Sends the alerts (one at a time, or all at once) and waits until each started run's first command ran. */
async function sendAlerts(
  samples: Sample[],
  o: { burst: boolean; gapMs: number },
  url: URL,
  token: string,
  fleet: FleetState,
): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.burst ? samples.length : 1 });
  try {
    if (o.burst) await Promise.all(samples.map((s) => post(agent, url, token, s)));
    else
      for (const [k, s] of samples.entries()) {
        if (k > 0 && o.gapMs > 0) await sleep(o.gapMs);
        await post(agent, url, token, s);
      }
  } finally {
    agent.destroy();
  }
  const expected = samples.filter((s) => s.outcome === 'started');
  const deadline = Date.now() + Math.max(60_000, samples.length * 300);
  for (;;) {
    const marks = readMarks(fleet);
    for (const s of samples) s.commandMs = marks.get(s.fingerprint);
    if (expected.every((s) => s.commandMs !== undefined) || Date.now() > deadline) return;
    await sleep(200);
  }
}

// ---- histories -------------------------------------------------------------------------------------------------

const eventMs = (e: HistoryEvent) => {
  const t = e.eventTime;
  return t ? Number(t.seconds ?? 0) * 1000 + (t.nanos ?? 0) / 1e6 : NaN;
};

/** What the guard's history says about one alert. */
interface GuardTimes {
  wftScheduled: number;
  wftStarted: number;
  wftCompleted: number;
  childInitiated?: number;
  childStarted?: number;
  updateCompleted?: number;
}

/** What a run's history says about its way to its first command. */
interface RunTimes {
  started: number;
  firstTaskStarted?: number;
  prepareScheduled?: number;
  prepareStarted?: number;
  prepareCompleted?: number;
  afterPrepareTaskStarted?: number;
  lockInitiated?: number;
  lockStarted?: number;
  lockWaited: boolean;
  afterLockTaskStarted?: number;
  workflowTasks: number;
}

async function decodeFirst(
  codecs: { decode(p: Payload[]): Promise<Payload[]> }[],
  payloads: Payload[] | null | undefined,
): Promise<unknown> {
  let p = payloads ?? [];
  for (const c of [...codecs].reverse()) p = await c.decode(p);
  return p[0] ? defaultPayloadConverter.fromPayload(p[0]) : undefined;
}

/** Per fingerprint, the guard's handling of its delivery (over every run of the guard: it continues as new). */
async function guardTimes(
  client: Client,
  keepDir?: string,
): Promise<{ byFingerprint: Map<string, GuardTimes>; runs: number }> {
  const codecs = dataConverterFromEnv(process.env).payloadCodecs ?? [];
  const id = guardId(RUNBOOK);
  const runIds: string[] = [];
  for await (const w of client.workflow.list({ query: `WorkflowId = "${id}"` })) runIds.push(w.runId);
  const byFingerprint = new Map<string, GuardTimes>();
  for (const runId of runIds) {
    const history = await client.workflow.getHandle(id, runId).fetchHistory();
    if (keepDir)
      fs.writeFileSync(
        path.join(keepDir, `guard-history-${runId}.json`),
        JSON.stringify(
          temporal.api.history.v1.History.toObject(history as temporal.api.history.v1.History, {
            longs: String,
            enums: String,
          }),
        ),
      );
    const byUpdate = new Map<string, GuardTimes[]>();
    const byChild = new Map<string, GuardTimes>();
    const byInitiatedId = new Map<string, GuardTimes>();
    let sched = NaN;
    let started = NaN;
    let completed = NaN;
    for (const e of history.events ?? []) {
      const t = eventMs(e);
      switch (e.eventType) {
        case EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
          sched = t;
          break;
        case EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
          started = t;
          break;
        case EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
          completed = t;
          break;
        case EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED: {
          // The update's argument: the request's deliveries for this runbook (one delivery in older receivers).
          const a = e.workflowExecutionUpdateAcceptedEventAttributes!;
          const arg = await decodeFirst(codecs, a.acceptedRequest?.input?.args?.payloads as Payload[]);
          const deliveries = (Array.isArray(arg) ? arg : [arg]) as ({ alert?: { fingerprint?: string } } | undefined)[];
          const times: GuardTimes[] = [];
          for (const d of deliveries) {
            const fp = d?.alert?.fingerprint;
            if (!fp) continue;
            const g: GuardTimes = { wftScheduled: sched, wftStarted: started, wftCompleted: completed };
            times.push(g);
            byFingerprint.set(fp, g);
            byChild.set(remediationId(RUNBOOK, fp), g);
          }
          byUpdate.set(a.acceptedRequest?.meta?.updateId ?? '', times);
          break;
        }
        case EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED: {
          const g = byChild.get(e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowId ?? '');
          if (g) {
            g.childInitiated = t;
            byInitiatedId.set(String(e.eventId), g);
          }
          break;
        }
        case EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED: {
          const g = byInitiatedId.get(String(e.childWorkflowExecutionStartedEventAttributes?.initiatedEventId));
          if (g) g.childStarted = t;
          break;
        }
        case EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED: {
          for (const g of byUpdate.get(e.workflowExecutionUpdateCompletedEventAttributes?.meta?.updateId ?? '') ?? [])
            g.updateCompleted = t;
          break;
        }
      }
    }
  }
  return { byFingerprint, runs: runIds.length };
}

async function runTimes(client: Client, workflowId: string): Promise<RunTimes | undefined> {
  let history: temporal.api.history.v1.IHistory;
  try {
    history = await client.workflow.getHandle(workflowId).fetchHistory();
  } catch {
    return undefined;
  }
  const r: RunTimes = { started: NaN, lockWaited: false, workflowTasks: 0 };
  let prepareId: string | undefined;
  for (const e of history.events ?? []) {
    const t = eventMs(e);
    switch (e.eventType) {
      case EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
        r.started = t;
        break;
      case EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
        if (r.afterLockTaskStarted === undefined) r.workflowTasks += 1;
        if (r.firstTaskStarted === undefined) r.firstTaskStarted = t;
        else if (r.prepareCompleted !== undefined && r.afterPrepareTaskStarted === undefined)
          r.afterPrepareTaskStarted = t;
        else if (r.lockStarted !== undefined && r.afterLockTaskStarted === undefined) r.afterLockTaskStarted = t;
        break;
      case EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED: {
        const name = e.activityTaskScheduledEventAttributes?.activityType?.name;
        if (name === 'prepare' && prepareId === undefined) {
          prepareId = String(e.eventId);
          r.prepareScheduled = t;
        } else if (name === 'watchHostLock') r.lockWaited = true;
        break;
      }
      case EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
        if (String(e.activityTaskStartedEventAttributes?.scheduledEventId) === prepareId) r.prepareStarted = t;
        break;
      case EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
        if (String(e.activityTaskCompletedEventAttributes?.scheduledEventId) === prepareId) r.prepareCompleted = t;
        break;
      case EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
        if (r.lockInitiated === undefined) r.lockInitiated = t;
        break;
      case EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED:
        r.lockWaited = true;
        break;
      case EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
        if (r.lockStarted === undefined) r.lockStarted = t;
        break;
    }
  }
  return r;
}

/** The phases of one alert's way to its first command (they add up to the total), and of its answer. */
const PHASES = [
  ['receiver -> guard task started', 'HTTP, parse, rules, update-with-start RPC, guard task queued'],
  ['guard task', 'decide + start-child command'],
  ['child started', 'server creates the remediation workflow'],
  ['run: first task queued', 'until the worker picks the run up'],
  ['run: first task', 'input checks, search attributes, schedule prepare'],
  ['prepare queued', 'activity pick-up'],
  ['prepare', 'load runbook + inventory, validate'],
  ['task after prepare queued', ''],
  ['task after prepare', 'memo/SA, audit runStarted (local activity), start host lock'],
  ['host lock started', 'server starts the lock child'],
  ['task after lock queued', ''],
  ['ssh step -> command', 'local activity, wrapper over pooled ssh, command starts'],
] as const;

function phasesOf(s: Sample, g: GuardTimes | undefined, r: RunTimes | undefined): (number | undefined)[] | undefined {
  if (!g || !r || s.commandMs === undefined) return undefined;
  const points = [
    s.sentMs,
    g.wftStarted,
    g.wftCompleted,
    r.started,
    r.firstTaskStarted,
    r.prepareScheduled,
    r.prepareStarted,
    r.prepareCompleted,
    r.afterPrepareTaskStarted,
    r.lockInitiated,
    r.lockStarted,
    r.afterLockTaskStarted,
    s.commandMs,
  ];
  if (points.some((p) => p === undefined || Number.isNaN(p))) return undefined;
  return points.slice(1).map((p, i) => p! - points[i]!);
}

// ---- the bench -------------------------------------------------------------------------------------------------

function table(rows: [string, Dist | undefined, string?][]): string {
  const f = (v: number) => v.toFixed(1).padStart(8);
  const w = Math.max(...rows.map(([n]) => n.length));
  const head = `${''.padEnd(w)}  ${['n', 'mean', 'p50', 'p90', 'p99', 'max'].map((h) => h.padStart(8)).join('')}`;
  return [
    head,
    ...rows.map(
      ([name, d, note]) =>
        `${name.padEnd(w)}  ${d ? `${String(d.n).padStart(8)}${[d.mean, d.p50, d.p90, d.p99, d.max].map(f).join('')}` : '       -'}${note ? `   ${note}` : ''}`,
    ),
  ].join('\n');
}

export async function alertsBench(o: AlertBenchOptions): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'runbook-bench-'));
  fs.chmodSync(dir, 0o755);
  let server: Awaited<ReturnType<typeof startDevServer>> | undefined;
  let fleet: FleetState | undefined;
  let worker: ChildProcess | undefined;
  let receiver: ChildProcess | undefined;
  let connection: Connection | undefined;
  try {
    const cli = await ensureTemporalCli(() => undefined);
    server = await startDevServer({
      cli: cli.path,
      port: await freePort(),
      headless: true,
      logFile: path.join(dir, 'temporal.log'),
      ...(o.db ? { dbFile: path.join(dir, 'temporal.db') } : {}),
      // For experiments, e.g. '--dynamic-config-value matching.numTaskqueueReadPartitions=1'.
      extraArgs: (process.env.RUNBOOK_BENCH_SERVER_ARGS ?? '').split(' ').filter(Boolean),
    });
    fleet = await fleetUp({ hosts: o.hosts, dir: path.join(dir, 'fleet') });
    const inventory = path.join(dir, 'fleet', 'inventory.yaml');
    const runbookDir = path.join(dir, 'runbooks');
    fs.mkdirSync(runbookDir);
    for (const f of fs.readdirSync(path.join(ROOT, 'bench', 'runbooks')).filter((n) => /^alert-.*\.yaml$/.test(n)))
      fs.copyFileSync(path.join(ROOT, 'bench', 'runbooks', f), path.join(runbookDir, f));
    const token = crypto.randomBytes(24).toString('hex');
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      AUDIT_URL: process.env.AUDIT_URL ?? `file:${path.join(dir, 'audit.jsonl')}`,
      TEMPORAL_ADDRESS: server.address,
      RUNBOOK_TASK_QUEUE: TASK_QUEUE,
      RUNBOOK_DIR: runbookDir,
      RUNBOOK_INVENTORY: inventory,
      RUNBOOK_RECEIVER_TOKEN: token,
    };
    worker = await spawnRunbook(
      ['worker'],
      { ...env, LOG_LEVEL: 'warn' },
      'Worker       polling',
      path.join(dir, 'worker.log'),
      'the worker',
    );
    const port = await freePort();
    receiver = await spawnRunbook(
      ['serve', '--ip', '127.0.0.1', '--port', String(port)],
      { ...env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'info' },
      'alert receiver on',
      path.join(dir, 'receiver.log'),
      'the receiver',
    );
    const url = new URL(`http://127.0.0.1:${port}/alerts/alertmanager`);
    connection = await Connection.connect({ address: server.address });
    const client = new Client({ connection, dataConverter: dataConverterFromEnv(process.env) });

    const hosts = fleet.hosts.map((h) => h.name);
    const tag = crypto.randomBytes(3).toString('hex');
    const make = (prefix: string, n: number): Sample[] =>
      Array.from({ length: n }, (_, i) => ({
        index: i,
        fingerprint: `${prefix}-${tag}-${String(i).padStart(4, '0')}`,
        host: hosts[i % hosts.length]!,
        sentMs: NaN,
      }));

    // Warm-up: starts the guard, opens the worker's ssh connections, warms caches; one alert first (the guard's start).
    const warm = make('warm', o.warmup);
    await sendAlerts(warm.slice(0, 1), { burst: false, gapMs: 0 }, url, token, fleet);
    await sendAlerts(warm.slice(1), { burst: false, gapMs: o.gapMs }, url, token, fleet);
    const cold = warm[0];

    // The receiver's floor: alerts no rule matches are answered without Temporal (HTTP, auth, parse, rules).
    const floorAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const floor: number[] = [];
    for (const s of make('nomatch', 50)) {
      await post(floorAgent, url, token, s, 'RunbookBenchNoRule');
      if (s.status === 200) floor.push(s.answeredMs! - s.sentMs);
    }
    floorAgent.destroy();

    const samples = make('fp', o.alerts);
    const pids = { server: server.pid, worker: worker.pid, receiver: receiver.pid };
    const cpu0 = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, cpuSeconds(p)]));
    const fleetCpu0 = fleetCpuSeconds(fleet);
    const bench0 = process.cpuUsage();
    const m0 = machineCpu();
    const load0 = os.loadavg()[0]!;
    const psi0 = cpuPressureMs();
    const clock0 = Date.now() - nowMs();
    const t0 = nowMs();
    await sendAlerts(samples, o, url, token, fleet);
    const elapsed = (nowMs() - t0) / 1000;
    const clockDrift = Date.now() - nowMs() - clock0;
    const m1 = machineCpu();
    const load1 = os.loadavg()[0]!;
    const cpuWaitPct = ((cpuPressureMs() - psi0) / (elapsed * 1000)) * 100;
    const cpuUsed = Object.fromEntries(
      Object.entries(pids).map(([k, p]) => [k, +(cpuSeconds(p) - cpu0[k]!).toFixed(2)]),
    );
    const benchCpu = process.cpuUsage(bench0);
    cpuUsed.bench = +((benchCpu.user + benchCpu.system) / 1e6).toFixed(2);
    cpuUsed.fleet = +(fleetCpuSeconds(fleet) - fleetCpu0).toFixed(2);
    const ticks = m1.total - m0.total;
    const cores = os.cpus().length;
    const machineBusy = ((m1.busy - m0.busy) / ticks) * cores;
    const steal = ((m1.steal - m0.steal) / ticks) * 100;
    const ours = Object.values(cpuUsed).reduce((a, b) => a + (Number.isNaN(b) ? 0 : b), 0) / elapsed;

    // Outcomes, then the runs' ends (bounded), then the histories.
    const outcomes = new Map<string, number>();
    for (const s of samples) {
      const k = s.status === 200 ? (s.outcome ?? 'no outcome') : `HTTP ${s.status ?? 'error'}: ${s.error ?? ''}`;
      outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
    }
    const started = samples.filter((s) => s.outcome === 'started');
    const ended = new Map<string, number>();
    const endBy = Date.now() + 120_000;
    await Promise.all(
      started.map(async (s) => {
        let status = 'not ended in 120 s';
        try {
          const r = await Promise.race([
            client.workflow.getHandle(s.workflowId!).result() as Promise<{ status?: string }>,
            sleep(Math.max(0, endBy - Date.now())).then(() => undefined),
          ]);
          if (r) status = r.status ?? 'ended';
        } catch (err) {
          status = `failed: ${(err as Error).message.slice(0, 100)}`;
        }
        ended.set(status, (ended.get(status) ?? 0) + 1);
      }),
    );
    const guard = await guardTimes(client, process.env.RUNBOOK_BENCH_KEEP ? dir : undefined);
    const runs = new Map<string, RunTimes | undefined>();
    for (const s of [...samples, ...(cold ? [cold] : [])])
      if (s.outcome === 'started') runs.set(s.fingerprint, await runTimes(client, s.workflowId!));

    // Figures.
    const measured = started.filter((s) => s.commandMs !== undefined);
    const total = measured.map((s) => s.commandMs! - s.sentMs);
    const answer = samples.filter((s) => s.answeredMs !== undefined).map((s) => s.answeredMs! - s.sentMs);
    const afterAnswer = measured.map((s) => s.commandMs! - s.answeredMs!);
    const commandBeforeAnswer = afterAnswer.filter((d) => d < 0).length;
    const phaseRows: number[][] = [];
    const answerPath: { childToUpdateDone: number[]; updateDoneToAnswer: number[] } = {
      childToUpdateDone: [],
      updateDoneToAnswer: [],
    };
    let lockWaits = 0;
    let rodeAlong = 0;
    for (const s of measured) {
      const g = guard.byFingerprint.get(s.fingerprint);
      if (g && g.wftScheduled < s.sentMs) rodeAlong += 1;
      const r = runs.get(s.fingerprint);
      if (r?.lockWaited) lockWaits += 1;
      const p = phasesOf(s, g, r);
      if (p) phaseRows.push(p as number[]);
      if (g?.updateCompleted !== undefined && r && !Number.isNaN(r.started)) {
        answerPath.childToUpdateDone.push(g.updateCompleted - r.started);
        answerPath.updateDoneToAnswer.push(s.answeredMs! - g.updateCompleted);
      }
    }
    const phaseDists = PHASES.map((_, k) => dist(phaseRows.map((row) => row[k]!)));
    const coldTotal = cold?.commandMs !== undefined ? cold.commandMs - cold.sentMs : undefined;
    const coldAnswer = cold?.answeredMs !== undefined ? cold.answeredMs - cold.sentMs : undefined;

    const totalD = dist(total);
    console.log(
      `alert bench: ${o.alerts} alerts (${o.burst ? 'burst: all at once' : `one at a time, ${o.gapMs} ms after each answer`}), ` +
        `${o.hosts} hosts, ${o.warmup} warm-up alerts, dev server ${o.db ? 'on SQLite' : 'in memory'}${process.env.RUNBOOK_BENCH_SERVER_ARGS ? ` (${process.env.RUNBOOK_BENCH_SERVER_ARGS})` : ''}; ${cores} CPUs; sent in ${elapsed.toFixed(1)} s`,
    );
    if (o.alerts < 200) console.log('(fewer than 200 alerts: a try-out, not a measurement to quote)');
    console.log(
      `outcomes: ${[...outcomes].map(([k, n]) => `${k} ${n}`).join(', ')}; first command seen for ${measured.length}/${started.length} started; ` +
        `runs ended: ${[...ended].map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}; host-lock waits ${lockWaits}; guard runs (continue-as-new) ${guard.runs}`,
    );
    console.log(
      table([
        ['webhook -> first command', totalD, 'target p50 <= 300, p99 <= 1000'],
        ['webhook -> 200 (HTTP round trip)', dist(answer)],
        ['  unmatched alert -> 200 (no Temporal)', dist(floor), "the receiver's own floor"],
        ['200 -> first command', dist(afterAnswer), `${commandBeforeAnswer} commands started before the 200`],
        ['  run started -> update completed', dist(answerPath.childToUpdateDone), 'the answer path, in the guard'],
        ['  update completed -> 200 received', dist(answerPath.updateDoneToAnswer)],
      ]),
    );
    if (coldTotal !== undefined)
      console.log(
        `cold first alert (starts the guard; not counted): first command ${coldTotal.toFixed(1)} ms, 200 after ${coldAnswer?.toFixed(1)} ms`,
      );
    const meanTotal = phaseRows.length ? mean(phaseRows.map((r) => r.reduce((a, b) => a + b, 0))) : NaN;
    console.log(
      `\nwhere the time goes (server event times; ${phaseRows.length} alerts with complete histories; ` +
        `${rodeAlong} updates rode on a guard task scheduled before the request, e.g. by a run's end):`,
    );
    console.log(
      table(
        PHASES.map(([name, note], k) => [
          name,
          phaseDists[k],
          `${phaseDists[k] ? `${((phaseDists[k]!.mean / meanTotal) * 100).toFixed(0).padStart(3)}%` : ''}  ${note}`,
        ]),
      ),
    );
    console.log(
      `machine: load ${load0.toFixed(2)} -> ${load1.toFixed(2)}, ${machineBusy.toFixed(2)} of ${cores} CPUs busy during the send (steal ${steal.toFixed(1)}%, ` +
        `some task waiting for a CPU ${cpuWaitPct.toFixed(0)}% of the time), ` +
        `of which ours ${ours.toFixed(2)} (CPU s: ${Object.entries(cpuUsed)
          .map(([k, v]) => `${k} ${v}`)
          .join(
            ', ',
          )}; fleet = the sshd trees; the rest is other processes); clock drift over the send ${clockDrift.toFixed(1)} ms`,
    );
    const json = {
      bench: 'alerts',
      alerts: o.alerts,
      mode: o.burst ? 'burst' : 'sequential',
      gapMs: o.burst ? null : o.gapMs,
      hosts: o.hosts,
      db: o.db ? 'sqlite' : 'memory',
      serverArgs: process.env.RUNBOOK_BENCH_SERVER_ARGS ?? '',
      started: started.length,
      commandsSeen: measured.length,
      outcomes: Object.fromEntries(outcomes),
      ended: Object.fromEntries(ended),
      lockWaits,
      guardRuns: guard.runs,
      latencyMs: totalD,
      answerMs: dist(answer),
      unmatchedAnswerMs: dist(floor),
      afterAnswerMs: dist(afterAnswer),
      commandBeforeAnswer,
      rodeAlong,
      coldMs: coldTotal === undefined ? null : +coldTotal.toFixed(1),
      phasesMs: Object.fromEntries(PHASES.map(([name], k) => [name, phaseDists[k]])),
      answerPathMs: {
        runStartedToUpdateCompleted: dist(answerPath.childToUpdateDone),
        updateCompletedToAnswer: dist(answerPath.updateDoneToAnswer),
      },
      machine: {
        cpus: cores,
        load: [+load0.toFixed(2), +load1.toFixed(2)],
        busyCpus: +machineBusy.toFixed(2),
        oursCpus: +ours.toFixed(2),
        stealPct: +steal.toFixed(1),
        cpuWaitPct: +cpuWaitPct.toFixed(0),
        cpuSeconds: cpuUsed,
        clockDriftMs: +clockDrift.toFixed(1),
      },
      target: { p50: 300, p99: 1000 },
    };
    console.log(JSON.stringify(json));
    if (process.env.RUNBOOK_BENCH_KEEP)
      fs.writeFileSync(
        path.join(dir, 'samples.json'),
        JSON.stringify(
          samples.map((s) => ({
            ...s,
            guard: guard.byFingerprint.get(s.fingerprint),
            run: runs.get(s.fingerprint),
          })),
          null,
          1,
        ),
      );
  } finally {
    await connection?.close();
    await stop(receiver);
    await stop(worker);
    if (fleet) await fleetDown(path.join(dir, 'fleet'));
    await server?.stop();
    if (process.env.RUNBOOK_BENCH_KEEP)
      console.log(`kept ${dir} (receiver.log, worker.log, temporal.log, audit.jsonl, samples.json)`);
    else fs.rmSync(dir, { recursive: true, force: true });
  }
}
