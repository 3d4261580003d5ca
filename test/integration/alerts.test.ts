// Integration (real parts only): alert-driven remediation end to end. A real Prometheus Alertmanager (Debian's
// prometheus-alertmanager) routes to a real `runbook serve` receiver process, which hands alerts to the alert guards
// on the shared Temporal dev server, whose remediations a real `runbook worker` process runs on the real sshd fleet.
// Proves: one remediation per incident however often it is delivered (Alertmanager's repeats, 1,000 direct
// deliveries, a receiver SIGKILLed in the middle), resolutions recorded and cancelling a run still at its gate, the
// circuit breaker tripping at its limit, hostile label values arriving on the host as data, and the receiver's
// 401/413/400/422 answers starting nothing.
//
// Every test has its own runbook (fixtures alert-*.yaml, so its own guard `alert-guard:RUNBOOK`) and fingerprints;
// the whole file shares one worker process (its own task queue and audit file) and loopback ports chosen free.
import type { ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { WorkflowNotFoundError, type WorkflowExecutionInfo } from '@temporalio/client';
import { freePort } from '../../common/ports';
import { hmacSign } from '../../triggers/auth';
import { guardId, type GuardStatus } from '../../workflows/guard-state';
import { guardStatusQuery, stateQuery } from '../../workflows/messages';
import { startAlertmanager } from '../harness/alertmanager';
import { withReceiver as withReceiverProcess, type ReceiverProcess } from '../harness/receiver';
import { temporalAddress, testRoot, uniqueTaskQueue, useFleetRuns } from '../harness/env';
import { startWorkerProcess, stopProcess, waitUntil, runCliProcess, type CliResult } from '../harness/processes';

const fleet = useFleetRuns();
const { inventory, remote } = fleet;

const RUNBOOK_DIR = path.join(__dirname, '..', 'fixtures', 'runbooks');
const TOKEN = `alerts-${crypto.randomUUID().replaceAll('-', '')}`;
const tq = uniqueTaskQueue('alerts');
/** In every fingerprint and marker file name, so reruns against a kept fleet never see an old file. */
const tag = crypto.randomBytes(4).toString('hex');

/**
 * Deliveries in flight at once, like a busy Alertmanager pair. The Temporal server takes at most 10 concurrent
 * updates per workflow; the receiver keeps its own below that per guard, so more senders only queue there.
 */
const IN_FLIGHT = 20;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let dir: string;
let auditFile: string;
let worker: ChildProcess | undefined;
let workerLog = '';
/** Slack-compatible escalation messages the worker sent (a local webhook sink). */
const slack: { text: string }[] = [];
let slackServer: http.Server | undefined;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(testRoot(), 'alerts-'));
  auditFile = path.join(dir, 'audit.jsonl');
  slackServer = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body = (body + c).slice(0, 1_000_000)));
    req.on('end', () => {
      try {
        slack.push(JSON.parse(body) as { text: string });
      } catch {
        slack.push({ text: `unparsable: ${body.slice(0, 200)}` });
      }
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  const slackPort = await freePort();
  await new Promise<void>((resolve) => slackServer!.listen(slackPort, '127.0.0.1', resolve));
  worker = await startWorkerProcess(temporalAddress(), tq, {
    RUNBOOK_DIR,
    RUNBOOK_INVENTORY: inventory(),
    AUDIT_URL: `file:${auditFile}`,
    RUNBOOK_ESCALATE_SLACK_URL: `http://127.0.0.1:${slackPort}/hook`,
  });
  // Drain its logs (a full stderr pipe would block the worker); the tail goes into failure messages.
  worker.stderr!.on('data', (c: Buffer) => (workerLog = (workerLog + c.toString()).slice(-20_000)));
}, 90_000);

afterAll(async () => {
  if (worker) await stopProcess(worker);
  await new Promise((r) => (slackServer ? slackServer.close(r) : r(undefined)));
});

// ---------------------------------------------------------------------------------------------------------------
// The receiver as a real `runbook serve` process (the alert-*.yaml fixtures are its rules).

const withReceiver = <T>(fn: (r: ReceiverProcess) => Promise<T>, extraEnv: NodeJS.ProcessEnv = {}): Promise<T> =>
  withReceiverProcess(
    { taskQueue: tq, runbookDir: RUNBOOK_DIR, inventory: inventory(), token: TOKEN, minRules: 5 },
    fn,
    extraEnv,
  );

// ---------------------------------------------------------------------------------------------------------------
// Deliveries.

interface AmAlert {
  labels: Record<string, string>;
  annotations?: Record<string, string>;
  fingerprint?: string;
  startsAt: string;
  endsAt?: string;
  status?: 'firing' | 'resolved';
}

/** An Alertmanager webhook (version 4) body, as Alertmanager sends it. */
function amBody(alerts: AmAlert[]): string {
  const status = alerts.every((a) => a.status === 'resolved') ? 'resolved' : 'firing';
  return JSON.stringify({
    receiver: 'runbook',
    status,
    alerts: alerts.map((a) => ({
      status: a.status ?? 'firing',
      labels: a.labels,
      annotations: a.annotations ?? {},
      startsAt: a.startsAt,
      endsAt: a.endsAt ?? '0001-01-01T00:00:00Z',
      generatorURL: 'http://prometheus.invalid/graph',
      ...(a.fingerprint ? { fingerprint: a.fingerprint } : {}),
    })),
    groupLabels: {},
    commonLabels: {},
    commonAnnotations: {},
    externalURL: 'http://alertmanager.invalid',
    version: '4',
    groupKey: `{}:{test="${tag}"}`,
    truncatedAlerts: 0,
  });
}

interface Answer {
  status: number;
  headers: Headers;
  body: {
    error?: string;
    problems?: string[];
    results?: { fingerprint: string; runbook: string; outcome: string; workflowId?: string; reason?: string }[];
  };
}

/** One POST to the receiver (bearer token unless `headers` says otherwise). */
async function post(url: string, body: string | Buffer, headers?: Record<string, string>): Promise<Answer> {
  const r = await fetch(url, {
    method: 'POST',
    headers: headers ?? { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body,
    signal: AbortSignal.timeout(30_000),
  });
  const text = await r.text();
  let parsed: Answer['body'];
  try {
    parsed = JSON.parse(text) as Answer['body'];
  } catch {
    throw new Error(`the receiver answered ${r.status} with a body that is not JSON: ${text.slice(0, 300)}`);
  }
  return { status: r.status, headers: r.headers, body: parsed };
}

/**
 * Delivers every body to the receiver, `concurrency` at a time, retrying a refused connection, a reset or a 5xx
 * the way Alertmanager does (each delivery at most 300 attempts, the whole call at most 150 s). With `killAfter`,
 * the receiver is SIGKILLed once that many deliveries were answered, and started again on its port.
 */
async function deliverAll(
  receiver: ReceiverProcess,
  bodies: string[],
  o: { concurrency: number; killAfter?: number },
): Promise<{ answers: Answer[]; retries: number; killedAt?: number }> {
  const url = `${receiver.url}/alerts/alertmanager`;
  const answers = new Array<Answer>(bodies.length);
  const deadline = Date.now() + 150_000;
  let next = 0;
  let done = 0;
  let retries = 0;
  let killedAt: number | undefined;
  let restart: Promise<void> | undefined;
  const one = async (i: number): Promise<Answer> => {
    let last = '';
    for (let attempt = 1; attempt <= 300; attempt++) {
      if (Date.now() > deadline) break;
      try {
        const a = await post(url, bodies[i]!);
        if (a.status < 500) return a;
        last = `${a.status} ${JSON.stringify(a.body)}`;
      } catch (err) {
        const cause = (err as { cause?: { code?: string; message?: string } }).cause;
        last = cause?.code ?? cause?.message ?? (err as Error).message;
      }
      retries += 1;
      await sleep(100 + ((i * 37 + attempt * 11) % 100));
    }
    throw new Error(`delivery ${i} was not accepted in time (last: ${last}); receiver log:\n${receiver.log}`);
  };
  const lane = async () => {
    for (let i = next++; i < bodies.length; i = next++) {
      answers[i] = await one(i);
      done += 1;
      if (o.killAfter !== undefined && done === o.killAfter) {
        killedAt = done;
        restart = (async () => {
          await receiver.kill();
          await sleep(500);
          await receiver.start();
        })();
      }
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, lane));
  await restart;
  return { answers, retries, killedAt };
}

// ---------------------------------------------------------------------------------------------------------------
// What happened: Temporal, the guard, the audit trail, the hosts.

/** Every execution (all runs of every id) of workflow type `runbook` whose id starts with `alert:RUNBOOK:`. */
async function runsOf(runbook: string): Promise<WorkflowExecutionInfo[]> {
  const out: WorkflowExecutionInfo[] = [];
  const query = `WorkflowType = 'runbook' AND WorkflowId STARTS_WITH 'alert:${runbook}:'`;
  for await (const w of fleet.env.client.workflow.list({ query })) {
    out.push(w);
    if (out.length > 1000) break;
  }
  return out;
}

/** Waits until `count` remediations of `runbook` are listed and none runs; then checks nothing more shows up. */
async function runsEnded(runbook: string, count: number, timeoutMs = 60_000): Promise<WorkflowExecutionInfo[]> {
  let last: WorkflowExecutionInfo[] = [];
  await waitUntil(
    async () => {
      last = await runsOf(runbook);
      return last.length >= count && last.every((w) => w.status.name !== 'RUNNING');
    },
    `${count} finished remediations of ${runbook}`,
    timeoutMs,
  ).catch((err: Error) => {
    throw new Error(
      `${err.message}; listed: ${JSON.stringify(last.map((w) => [w.workflowId, w.status.name]))}\nworker log:\n${workerLog}`,
    );
  });
  await sleep(1500); // visibility is eventually consistent: a late extra run would show up by now
  return runsOf(runbook);
}

/** The guard's state, by query (undefined before its first alert). */
async function guard(runbook: string): Promise<GuardStatus | undefined> {
  try {
    return await fleet.env.client.workflow.getHandle(guardId(runbook)).query(guardStatusQuery);
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  }
}

/** The CLI, as an operator runs it. */
function cli(...args: string[]): Promise<CliResult> {
  return runCliProcess(
    args,
    { TEMPORAL_ADDRESS: temporalAddress(), RUNBOOK_TASK_QUEUE: tq, RUNBOOK_DIR },
    { timeout: 30_000 },
  );
}

async function triggersStatus(runbook: string): Promise<GuardStatus> {
  const r = await cli('triggers', 'status', runbook, '--json');
  if (r.code !== 0) throw new Error(`runbook triggers status ${runbook} exited ${r.code}: ${r.stderr}`);
  const all = JSON.parse(r.stdout) as GuardStatus[];
  expect(all.map((s) => s.runbook)).toEqual([runbook]);
  return all[0]!;
}

interface AuditLine {
  kind: string;
  runbook: { name: string };
  initiator: { trigger: string; id: string };
  run: { workflowId: string; runId: string };
  status: string;
  error?: string;
  detail?: Record<string, unknown>;
}

/** The worker's change records about `runbook` (complete lines only: a record may be half written). */
function auditOf(runbook: string, kind?: string): AuditLine[] {
  if (!fs.existsSync(auditFile)) return [];
  const text = fs.readFileSync(auditFile, 'utf8');
  return text
    .slice(0, text.lastIndexOf('\n') + 1)
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as AuditLine)
    .filter((r) => r.runbook?.name === runbook && (kind === undefined || r.kind === kind));
}

/** A file in the fleet user's home on host-N, as bytes ('' when absent). */
async function hostFile(host: number, file: string): Promise<Buffer> {
  expect(file).toMatch(/^[a-z0-9.-]+$/);
  return Buffer.from((await remote(host, `base64 -w0 ${file} 2>/dev/null || true`)).trim(), 'base64');
}

async function linesOn(hosts: number[], file: string): Promise<string[]> {
  const out: string[] = [];
  for (const h of hosts) out.push(...(await hostFile(h, file)).toString('utf8').split('\n').filter(Boolean));
  return out.sort();
}

const summary = (runs: WorkflowExecutionInfo[]) => runs.map((w) => [w.workflowId, w.status.name]).sort();

// ---------------------------------------------------------------------------------------------------------------

test('a real Alertmanager: an alert, posted again and repeated by Alertmanager, gives exactly one run on its host; its resolution is recorded', async () => {
  await withReceiver(async (receiver) => {
    const am = await startAlertmanager({
      dir: path.join(dir, 'am-once'),
      webhookUrl: `${receiver.url}/alerts/alertmanager`,
      token: TOKEN,
    });
    try {
      const marker = `${tag}-am.txt`;
      const labels = { alertname: 'RunbookTestAm', severity: 'critical', instance: 'host-2', marker };
      const alert = {
        labels,
        annotations: { summary: 'a test alert' },
        startsAt: new Date(Date.now() - 60_000).toISOString(),
      };
      // Not matched (severity fails the regex, then `silenced` the negation): no run for these.
      await am.postAlerts([
        { ...alert, labels: { ...labels, severity: 'info' } },
        { ...alert, labels: { ...labels, silenced: 'yes' } },
      ]);
      await am.postAlerts([alert]);
      let fp = '';
      await waitUntil(
        async () => {
          const found = (await am.alerts()).find(
            (a) => a.labels.marker === marker && a.labels.severity === 'critical' && !a.labels.silenced,
          );
          fp = found?.fingerprint ?? '';
          return fp !== '';
        },
        'Alertmanager to list the posted alert',
        10_000,
      );
      const wf = `alert:alert-am:${fp}`;
      await waitUntil(
        async () => (await hostFile(2, marker)).length > 0,
        `the remediation to write ${marker} on host-2 (Alertmanager log:\n${am.log().slice(-3000)}\nreceiver log:\n${receiver.log})`,
        30_000,
      );
      // The same alert posted again, several times; Alertmanager itself repeats it every ~2 s (repeat_interval).
      for (let i = 0; i < 5; i++) {
        await am.postAlerts([alert]);
        await sleep(300);
      }
      await waitUntil(
        async () => ((await guard('alert-am'))?.counters.deliveries ?? 0) >= 4,
        'the guard to have seen the alert 3 more times (Alertmanager repeats it)',
        30_000,
      );

      const runs = await runsEnded('alert-am', 1);
      expect(summary(runs)).toEqual([[wf, 'COMPLETED']]);
      expect((await hostFile(2, marker)).toString()).toBe(`${fp}\n`);
      expect((await hostFile(1, marker)).length + (await hostFile(3, marker)).length).toBe(0);
      // Only the matching alert ever reached the guard.
      const before = (await guard('alert-am'))!;
      expect(before.counters).toMatchObject({ started: 1, suppressed: 0, refused: 0 });
      expect(before.counters.deduplicated).toBe(before.counters.deliveries - 1);
      expect(before.incidents).toBe(1);

      // Resolved: Alertmanager sends it (send_resolved), the guard records it once, for this fingerprint and run.
      await am.postAlerts([{ ...alert, endsAt: new Date(Date.now() - 1000).toISOString() }]);
      await waitUntil(
        async () => auditOf('alert-am', 'alert.resolved').length > 0,
        `an alert.resolved record for ${fp} (Alertmanager log:\n${am.log().slice(-3000)})`,
        30_000,
      );
      await sleep(2500); // Alertmanager's next flushes: a resolution delivered again is not recorded again
      const resolved = auditOf('alert-am', 'alert.resolved');
      expect(resolved).toHaveLength(1);
      expect(resolved[0]).toMatchObject({
        initiator: { trigger: 'alert', id: fp },
        status: 'resolved',
        detail: { run: { workflowId: wf }, outcome: 'started', source: 'alertmanager' },
      });
      expect(
        auditOf('alert-am')
          .filter((r) => r.kind.startsWith('alert.'))
          .map((r) => r.kind),
      ).toEqual(['alert.resolved']);
      const status = await triggersStatus('alert-am');
      expect(status.counters).toMatchObject({ started: 1, resolved: 1, suppressed: 0, refused: 0 });
      expect(status.active).toEqual([]);
      expect(summary(await runsOf('alert-am'))).toEqual([[wf, 'COMPLETED']]);
    } finally {
      await am.stop();
    }
  });
}, 120_000);

test('a real Alertmanager: the alert resolving while its high-risk remediation waits for approval cancels it; nothing runs on the host', async () => {
  await withReceiver(async (receiver) => {
    const am = await startAlertmanager({
      dir: path.join(dir, 'am-gate'),
      webhookUrl: `${receiver.url}/alerts/alertmanager`,
      token: TOKEN,
    });
    try {
      const marker = `${tag}-gate.txt`;
      const alert = {
        labels: { alertname: 'RunbookTestGate', instance: 'host-3', marker },
        startsAt: new Date(Date.now() - 60_000).toISOString(),
      };
      await am.postAlerts([alert]);
      let runs: WorkflowExecutionInfo[] = [];
      await waitUntil(
        async () => (runs = await runsOf('alert-gate')).length > 0,
        `the remediation of alert-gate to start (receiver log:\n${receiver.log})`,
        30_000,
      );
      const wf = runs[0]!.workflowId;
      const handle = fleet.env.client.workflow.getHandle(wf);
      await waitUntil(
        async () => (await handle.query(stateQuery)).status === 'awaiting-approval',
        `${wf} to wait at its approval gate`,
        30_000,
      );

      await am.postAlerts([{ ...alert, endsAt: new Date(Date.now() - 1000).toISOString() }]);
      const ended = await runsEnded('alert-gate', 1, 30_000);
      expect(ended.map((w) => [w.workflowId, w.searchAttributes.RunbookStatus])).toEqual([[wf, ['cancelled']]]);
      // Nothing to do once the alert resolved: the run completes (it was not cancelled by anyone).
      expect(ended[0]!.status.name).toBe('COMPLETED');
      const state = await handle.query(stateQuery);
      expect(state.decisions).toEqual([expect.objectContaining({ id: 'gate', approve: false, by: 'alert-resolved' })]);
      expect((await hostFile(3, marker)).length).toBe(0);
      const resolved = auditOf('alert-gate', 'alert.resolved');
      expect(resolved).toEqual([
        expect.objectContaining({
          detail: expect.objectContaining({ run: expect.objectContaining({ workflowId: wf }) }),
        }),
      ]);
      expect(auditOf('alert-gate', 'step')).toEqual([]); // no step ran anywhere
      // A remediation cancelled at its gate is no failure: it does not count towards the breaker.
      expect((await triggersStatus('alert-gate')).counters).toMatchObject({ started: 1, resolved: 1, failed: 0 });
    } finally {
      await am.stop();
    }
  });
}, 120_000);

test('1,000 deliveries over 10 fingerprints, the receiver SIGKILLed and restarted after 400: exactly 10 runs', async () => {
  const fps = Array.from({ length: 10 }, (_, i) => `${tag}-flood-${i}`);
  const marker = `${tag}-flood.txt`;
  const startsAt = new Date(Date.now() - 60_000).toISOString();
  const bodies = Array.from({ length: 1000 }, (_, k) => {
    const i = k % 10;
    return amBody([
      {
        fingerprint: fps[i],
        startsAt,
        labels: { alertname: 'RunbookTestFlood', instance: `host-${(i % 3) + 1}`, marker, n: String(i) },
      },
    ]);
  });
  await withReceiver(async (receiver) => {
    const t0 = Date.now();
    const { answers, retries, killedAt } = await deliverAll(receiver, bodies, {
      concurrency: IN_FLIGHT,
      killAfter: 400,
    });
    process.stderr.write(`alerts: 1,000 deliveries in ${Date.now() - t0} ms, ${retries} retried\n`);
    expect(killedAt).toBe(400);
    expect(receiver.starts).toBe(2);
    expect(answers.filter((a) => a.status !== 200).map((a) => [a.status, a.body])).toEqual([]);
    const outcomes = new Set(answers.flatMap((a) => a.body.results!.map((r) => r.outcome)));
    expect([...outcomes].sort()).toEqual(['deduplicated', 'started']);
  });

  const runs = await runsEnded('alert-flood', 10);
  expect(summary(runs)).toEqual(fps.map((fp) => [`alert:alert-flood:${fp}`, 'COMPLETED']).sort());
  expect(await linesOn([1, 2, 3], marker)).toEqual([...fps].sort());
  const status = await triggersStatus('alert-flood');
  expect(status.counters.started).toBe(10);
  expect(status.counters.deliveries).toBeGreaterThanOrEqual(1000);
  expect(status.counters.deduplicated).toBe(status.counters.deliveries - 10);
  expect(status.counters).toMatchObject({ suppressed: 0, refused: 0, failed: 0 });
  expect(status.breaker).toBeUndefined();
}, 180_000);

test('a failing remediation behind a breaker of 3 failures: 10 fingerprints, 1,000 deliveries, a receiver kill in each phase: exactly 3 runs, then the breaker is open and the other 7 are suppressed', async () => {
  const fps = Array.from({ length: 10 }, (_, i) => `${tag}-brk-${i}`);
  const marker = `${tag}-brk.txt`;
  const startsAt = new Date(Date.now() - 60_000).toISOString();
  const body = (i: number) =>
    amBody([
      {
        fingerprint: fps[i],
        startsAt,
        labels: { alertname: 'RunbookTestBreaker', instance: `host-${(i % 3) + 1}`, marker, n: String(i) },
      },
    ]);
  await withReceiver(async (receiver) => {
    // Phase 1: the first 3 fingerprints, 300 deliveries: 3 runs, which fail. Failures count when runs end, so
    // phase 2 starts only once all 3 ended and the breaker opened.
    const first = await deliverAll(
      receiver,
      Array.from({ length: 300 }, (_, k) => body(k % 3)),
      { concurrency: IN_FLIGHT, killAfter: 120 },
    );
    expect(first.answers.filter((a) => a.status !== 200).map((a) => [a.status, a.body])).toEqual([]);
    expect(summary(await runsEnded('alert-breaker', 3))).toEqual(
      fps.slice(0, 3).map((fp) => [`alert:alert-breaker:${fp}`, 'FAILED']),
    );
    await waitUntil(
      async () => (await guard('alert-breaker'))?.breaker !== undefined,
      'the breaker of alert-breaker to open after 3 failed remediations',
      20_000,
    );
    const open = await triggersStatus('alert-breaker');
    expect(open.breaker?.reason).toBe('3 failed remediations in 1h');
    expect(open.failuresInBreakerWindow).toBe(3);
    const described = await cli('triggers', 'status', 'alert-breaker');
    expect(described.stdout).toMatch(/BREAKER OPEN until .* \(3 failed remediations in 1h\)/);

    // Phase 2: the other 7 fingerprints, 700 deliveries: all suppressed, one record per incident.
    const second = await deliverAll(
      receiver,
      Array.from({ length: 700 }, (_, k) => body(3 + (k % 7))),
      { concurrency: IN_FLIGHT, killAfter: 300 },
    );
    expect(second.answers.filter((a) => a.status !== 200).map((a) => [a.status, a.body])).toEqual([]);
    const outcomes = new Set(second.answers.flatMap((a) => a.body.results!.map((r) => r.outcome)));
    expect([...outcomes]).toEqual(['suppressed']);
    expect(receiver.starts).toBe(3);
  });

  expect(summary(await runsEnded('alert-breaker', 3))).toEqual(
    fps.slice(0, 3).map((fp) => [`alert:alert-breaker:${fp}`, 'FAILED']),
  );
  expect(await linesOn([1, 2, 3], marker)).toEqual(fps.slice(0, 3).sort());
  const suppressed = auditOf('alert-breaker', 'alert.suppressed');
  expect(suppressed.map((r) => r.initiator.id).sort()).toEqual(fps.slice(3).sort());
  for (const r of suppressed)
    expect(r.error).toMatch(/^circuit breaker open until .* \(3 failed remediations in 1h\)$/);
  expect(auditOf('alert-breaker', 'alert.breaker').map((r) => r.status)).toEqual(['open']);
  const status = await triggersStatus('alert-breaker');
  expect(status.breaker).toBeDefined();
  expect(status.counters).toMatchObject({ started: 3, failed: 3, suppressed: 7, refused: 0 });

  // Humans were told: each failure, the breaker opening, each suppressed incident (once).
  const told = () =>
    slack
      .map((m) => m.text)
      .filter((t) => t.includes('runbook alert-breaker'))
      .map((t) => `${t.split(':')[0]} ${/fingerprint (\S+)/.exec(t)?.[1] ?? '?'}`);
  await waitUntil(async () => told().length >= 11, 'eleven escalations about alert-breaker', 30_000).catch(
    (err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(told())}`);
    },
  );
  const messages = told();
  expect(messages.filter((m) => m.startsWith('Remediation failed')).sort()).toEqual(
    fps
      .slice(0, 3)
      .map((fp) => `Remediation failed ${fp}`)
      .sort(),
  );
  expect(messages.filter((m) => m.startsWith('Circuit breaker open'))).toHaveLength(1);
  expect(messages.filter((m) => m.startsWith('Remediation suppressed')).sort()).toEqual(
    fps
      .slice(3)
      .map((fp) => `Remediation suppressed ${fp}`)
      .sort(),
  );
}, 180_000);

test('hostile label values reach the host as data; a label failing a param is a 422 naming it; 401, 413 and 400 answers; nothing starts in those cases', async () => {
  const pwned = path.join('/tmp', `pwned-${tag}`);
  const startsAt = new Date(Date.now() - 60_000).toISOString();
  const notes = [
    `; touch ${pwned}-1`,
    `$(touch ${pwned}-2)`,
    `\`touch ${pwned}-3\``,
    `'; touch ${pwned}-4; echo '`,
    `" && touch ${pwned}-5 && echo "`,
    `| touch ${pwned}-6 # \\`,
    '${{ raw(params.marker) }} $HOME ~ * ?[a] {a,b} %s %n -n -e >x <y 2>&1 &',
    '-e \\x41 \\\\ \' " ünïcødé ✓ 𝄞',
  ];
  const hostile = notes.map((note, i) => ({
    fingerprint: `${tag}-h${i}`,
    startsAt,
    labels: {
      alertname: 'RunbookTestHostile',
      instance: `host-${(i % 3) + 1}`,
      marker: `${tag}-h${i}.txt`,
      note,
      unit: 'ok-unit',
    },
  }));

  await withReceiver(
    async (receiver) => {
      const url = `${receiver.url}/alerts/alertmanager`;
      const ok = await post(url, amBody(hostile));
      expect([ok.status, ok.body.error]).toEqual([200, undefined]);
      expect(ok.body.results!.map((r) => r.outcome)).toEqual(notes.map(() => 'started'));
      const runs = await runsEnded('alert-hostile', notes.length);
      // No injected command ran (as any fleet user: /tmp is shared), and every run succeeded.
      expect(fs.readdirSync('/tmp').filter((f) => f.startsWith(`pwned-${tag}`))).toEqual([]);
      for (const h of [1, 2, 3]) expect(await remote(h, 'ls -a')).not.toMatch(/^(x|y|pwned.*)$/m);
      expect(summary(runs)).toEqual(hostile.map((a) => [`alert:alert-hostile:${a.fingerprint}`, 'COMPLETED']).sort());
      for (const [i, a] of hostile.entries()) {
        expect((await hostFile((i % 3) + 1, a.labels.marker)).equals(Buffer.from(a.labels.note, 'utf8'))).toBe(true);
        expect((await hostFile((i % 3) + 1, `${a.labels.marker}.unit`)).toString()).toBe('ok-unit');
      }

      const before = (await guard('alert-hostile'))!;
      expect(before.counters.started).toBe(notes.length);
      const nothingStarted = async (fingerprint: string) => {
        await expect(
          fleet.env.client.workflow.getHandle(`alert:alert-hostile:${fingerprint}`).describe(),
        ).rejects.toThrow(WorkflowNotFoundError);
      };
      const valid = (fingerprint: string, labels: Record<string, string> = {}) =>
        amBody([
          {
            fingerprint,
            startsAt,
            labels: {
              alertname: 'RunbookTestHostile',
              instance: 'host-1',
              marker: `${fingerprint}.txt`,
              note: 'x',
              unit: 'ok',
              ...labels,
            },
          },
        ]);

      // A label failing a param's pattern: 422 naming the alert, the runbook and the param; recorded, never run.
      const badUnit = await post(url, valid(`${tag}-bad-unit`, { unit: 'nginx; reboot' }));
      expect(badUnit.status).toBe(422);
      expect(badUnit.body.error).toMatch(/^alerts\[0\] for alert-hostile: params\.unit: /);
      expect(badUnit.body.results).toEqual([expect.objectContaining({ outcome: 'refused' })]);
      // A label that would widen the targets selector: refused the same way, naming the param.
      const widened = await post(url, valid(`${tag}-bad-host`, { instance: 'host-1,host-2' }));
      expect(widened.status).toBe(422);
      expect(widened.body.error).toMatch(/^alerts\[0\] for alert-hostile: params\.host: /);
      await nothingStarted(`${tag}-bad-unit`);
      await nothingStarted(`${tag}-bad-host`);
      expect(auditOf('alert-hostile', 'alert.refused').map((r) => [r.initiator.id, r.error?.split(':')[0]])).toEqual([
        [`${tag}-bad-unit`, 'params.unit'],
        [`${tag}-bad-host`, 'params.host'],
      ]);

      const afterRefused = (await guard('alert-hostile'))!.counters;
      expect(afterRefused).toMatchObject({ started: notes.length, refused: 2 });

      // Unauthenticated: no token, a wrong one, another scheme.
      for (const headers of <Record<string, string>[]>[
        { 'content-type': 'application/json' },
        { authorization: `Bearer ${TOKEN}x`, 'content-type': 'application/json' },
        { authorization: `Basic ${Buffer.from(`u:${TOKEN}`).toString('base64')}`, 'content-type': 'application/json' },
      ]) {
        const r = await post(url, valid(`${tag}-unauth`), headers);
        expect(r.status).toBe(401);
        expect(r.headers.get('www-authenticate')).toMatch(/^Bearer /);
      }
      // Over RUNBOOK_RECEIVER_MAX_BODY (16 KiB here): a valid delivery, padded.
      const big = JSON.parse(valid(`${tag}-big`)) as Record<string, unknown>;
      big.commonAnnotations = { padding: 'p'.repeat(20_000) };
      const tooBig = await post(url, JSON.stringify(big));
      expect(tooBig.status).toBe(413);
      expect(tooBig.body.error).toContain('16384 bytes');
      // Malformed JSON: 400 with the reason.
      const malformed = await post(url, valid(`${tag}-malformed`).slice(0, -10));
      expect(malformed.status).toBe(400);
      expect(malformed.body.error).toMatch(/^malformed JSON: /);
      // A payload without `alerts`: 400 naming the field.
      const noAlerts = JSON.parse(valid(`${tag}-no-alerts`)) as Record<string, unknown>;
      delete noAlerts.alerts;
      const missing = await post(url, JSON.stringify(noAlerts));
      expect(missing.status).toBe(400);
      expect(missing.body.problems).toEqual(['alerts: expected an array of alerts']);

      for (const fp of [`${tag}-unauth`, `${tag}-big`, `${tag}-malformed`, `${tag}-no-alerts`])
        await nothingStarted(fp);
      // The guard never heard of them, and no other run started.
      expect((await guard('alert-hostile'))!.counters).toEqual(afterRefused);
      expect(summary(await runsOf('alert-hostile'))).toEqual(summary(runs));
    },
    { RUNBOOK_RECEIVER_MAX_BODY: '16384' },
  );
}, 120_000);

test('Grafana with an HMAC signature over TIMESTAMP:BODY: a signed alert starts its run; unsigned, wrongly signed or stale ones are 401', async () => {
  const secret = crypto.randomBytes(24).toString('hex');
  await withReceiver(
    async (receiver) => {
      const marker = `${tag}-grafana.txt`;
      const fingerprint = `${tag}gf`;
      const body = JSON.stringify({
        receiver: 'runbook',
        status: 'firing',
        orgId: 1,
        alerts: [
          {
            status: 'firing',
            labels: { alertname: 'RunbookTestAm', severity: 'page', instance: 'host-1', marker },
            annotations: { summary: 'from Grafana' },
            startsAt: new Date(Date.now() - 60_000).toISOString(),
            endsAt: '0001-01-01T00:00:00Z',
            generatorURL: 'http://grafana.invalid/alerting/x/view',
            fingerprint,
            silenceURL: 'http://grafana.invalid/alerting/silence/new',
            dashboardURL: '',
            panelURL: '',
            values: { A: 1 },
            valueString: "[ var='A' value=1 ]",
          },
        ],
        groupLabels: { alertname: 'RunbookTestAm' },
        commonLabels: {},
        commonAnnotations: {},
        externalURL: 'http://grafana.invalid/',
        version: '1',
        groupKey: '{}:{alertname="RunbookTestAm"}',
        truncatedAlerts: 0,
        title: '[FIRING:1] RunbookTestAm',
        state: 'alerting',
        message: 'from Grafana',
      });
      const url = `${receiver.url}/alerts/grafana`;
      const signed = (ts: number, key = secret) => ({
        'content-type': 'application/json',
        'x-grafana-alerting-signature': hmacSign(Buffer.from(body), key, String(ts)),
        'x-grafana-alerting-timestamp': String(ts),
      });
      const now = Math.floor(Date.now() / 1000);
      expect((await post(url, body, { 'content-type': 'application/json' })).status).toBe(401);
      expect((await post(url, body, signed(now, 'not the secret'))).status).toBe(401);
      expect((await post(url, body, signed(now - 600))).status).toBe(401); // replayed 10 minutes later
      const noTimestamp = { ...signed(now) } as Record<string, string>;
      delete noTimestamp['x-grafana-alerting-timestamp'];
      expect((await post(url, body, noTimestamp)).status).toBe(401);
      expect(await runsOf('alert-am').then((r) => r.filter((w) => w.workflowId.endsWith(fingerprint)))).toEqual([]);

      const ok = await post(url, body, signed(now));
      expect(ok.status).toBe(200);
      expect(ok.body.results).toEqual([
        expect.objectContaining({ fingerprint, runbook: 'alert-am', outcome: 'started' }),
      ]);
      const wf = `alert:alert-am:${fingerprint}`;
      await waitUntil(async () => (await linesOn([1], marker)).length === 1, `${wf} to write its line`, 30_000);
      expect(await linesOn([1, 2, 3], marker)).toEqual([fingerprint]);
    },
    {
      RUNBOOK_RECEIVER_TOKEN: '',
      RUNBOOK_RECEIVER_HMAC_SECRET: secret,
      RUNBOOK_RECEIVER_HMAC_TIMESTAMP_HEADER: 'X-Grafana-Alerting-Timestamp',
    },
  );
});
