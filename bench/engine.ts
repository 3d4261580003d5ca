// Benchmarks of the engine with real parts: a dev server, a real sshd fleet, and a `runbook worker` process.
//  - steps: runs of 65 and of 5 sequential ssh steps; the per-step slope against a raw ssh2 exec on a pooled connection.
//  - concurrent: N small runbooks started at once on one worker; all must complete; worker RSS sampled.
import { dataConverterFromEnv } from '../common/codec';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { exec } from '../activities/ssh/exec';
import { SshPool } from '../activities/ssh/pool';
import { runSshStep } from '../activities/ssh/step';
import { ECHO_STEP } from './ssh-overhead';
import { Secrets } from '../activities/secrets/providers';
import { freePort } from '../common/ports';
import { DEFAULT_SSH_LOGIN, loadInventory, sshTargetFor } from '../dsl/inventory';
import { fleetDown, fleetUp } from '../fleet/fleet';
import { startDevServer } from '../worker/dev-server';
import { ensureTemporalCli } from '../worker/temporal-cli';
import type { runbook } from '../workflows/runbook';
import { openAuditStore, verifyStore } from '../audit/store';

const ROOT = path.join(__dirname, '..', '..');

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

/** Runbooks of n trivial sequential ssh steps, beside the shipped bench runbooks, in `dir`. */
function writeStepRunbooks(dir: string, counts: number[]): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(path.join(ROOT, 'bench', 'runbooks', 'bench-small.yaml'), path.join(dir, 'bench-small.yaml'));
  for (const n of counts) {
    const steps = Array.from({ length: n }, (_, i) => `  - { id: s${i + 1}, ssh: { run: 'echo hello' } }`).join('\n');
    fs.writeFileSync(
      path.join(dir, `bench-steps-${n}.yaml`),
      `apiVersion: runbooks/v1
kind: Runbook
metadata: { name: bench-steps-${n}, description: ${n} sequential trivial ssh steps on one host, risk: low }
params:
  host: { type: targets, description: the host }
targets: \${{ params.host }}
steps:
${steps}
`,
    );
  }
}

export async function startWorker(
  address: string,
  taskQueue: string,
  inventory: string,
  auditUrl: string,
  runbookDir: string,
): Promise<ChildProcess> {
  const child = spawn(
    'node',
    [
      ...(process.env.RUNBOOK_BENCH_WORKER_NODE_ARGS ?? '').split(' ').filter(Boolean),
      path.join(ROOT, 'bin', 'runbook.js'),
      'worker',
    ],
    {
      env: {
        ...process.env,
        AUDIT_URL: auditUrl,
        TEMPORAL_ADDRESS: address,
        RUNBOOK_TASK_QUEUE: taskQueue,
        LOG_LEVEL: 'error',
        RUNBOOK_DIR: runbookDir,
        RUNBOOK_INVENTORY: inventory,
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('worker did not start')), 60_000);
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('Worker       polling')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return child;
}

/** An in-memory dev server for a bench (headless, on a free port), its log in `dir`. */
export async function benchServer(dir: string) {
  const cli = await ensureTemporalCli(() => undefined);
  return startDevServer({
    cli: cli.path,
    port: await freePort(),
    headless: true,
    logFile: path.join(dir, 'temporal.log'),
  });
}

export async function engineBench(concurrent: number): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'runbook-bench-'));
  fs.chmodSync(dir, 0o755);
  const server = await benchServer(dir);
  await fleetUp({ hosts: 3, dir: path.join(dir, 'fleet') });
  const inventory = path.join(dir, 'fleet', 'inventory.yaml');
  const tq = 'bench';
  // Every step writes its change record (fsync'd JSONL by default; AUDIT_URL=postgres://... to bench that).
  const auditUrl = process.env.AUDIT_URL ?? `file:${path.join(dir, 'audit.jsonl')}`;
  const SHORT = 5;
  const LONG = 65;
  writeStepRunbooks(path.join(dir, 'runbooks'), [SHORT, LONG]);
  const worker = await startWorker(server.address, tq, inventory, auditUrl, path.join(dir, 'runbooks'));
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection, dataConverter: dataConverterFromEnv(process.env) });
  const pool = new SshPool();
  try {
    // Floor: raw exec on a pooled connection to the same host. Measured between the runs (this VM's process
    // start cost drifts by 2x over minutes), so floor and steps see the same machine.
    const target = sshTargetFor(loadInventory(inventory), 'host-1', DEFAULT_SSH_LOGIN);
    await pool.use(target, (c) => exec(c, 'true'));
    const rawExec = async () => {
      const t0 = Date.now();
      for (let i = 0; i < 40; i++) await pool.use(target, (c) => exec(c, 'echo hello'));
      return (Date.now() - t0) / 40;
    };
    // The exactly-once wrapper alone, from this process: the engine's cost above it is the worker's own.
    const secrets = new Secrets({ env: process.env });
    const wrappedStep = async (r: number) => {
      const t0 = Date.now();
      for (let i = 0; i < 40; i++) {
        await runSshStep(pool, secrets, {
          target,
          action: ECHO_STEP,
          key: { workflowId: `bench-wrapped-${r}`, stepPath: `s${i}` },
        });
      }
      return (Date.now() - t0) / 40;
    };

    // Per step = the slope between runs of SHORT and LONG steps of the same shape, so the per-run costs (start,
    // prepare, host lock, the audit of the run's start and end, and their jitter) are not spread over the steps.
    const timeRun = async (n: number, id: string) => {
      const t0 = Date.now();
      await client.workflow.execute<typeof runbook>('runbook', {
        taskQueue: tq,
        workflowId: id,
        args: [{ runbook: `bench-steps-${n}`, params: { host: 'host:host-1' } }],
      });
      return Date.now() - t0;
    };
    await timeRun(LONG, 'warm-long');
    await timeRun(SHORT, 'warm-short');
    const long: number[] = [];
    const short: number[] = [];
    const floors: number[] = [];
    const wrapped: number[] = [];
    for (let r = 0; r < 5; r++) {
      floors.push(await rawExec());
      wrapped.push(await wrappedStep(r));
      long.push(await timeRun(LONG, `long-${r}`));
      short.push(await timeRun(SHORT, `short-${r}`));
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const floor = median(floors);
    const perStep = (median(long) - median(short)) / (LONG - SHORT);
    console.log(
      `sequential steps (medians of 5 runs of ${LONG} and of ${SHORT} steps: ${median(long)} ms, ${median(short)} ms): ${perStep.toFixed(1)} ms per step; ` +
        `raw ssh2 exec ${floor.toFixed(1)} ms; engine overhead ${(perStep - floor).toFixed(1)} ms per step (of which the exactly-once wrapper, run alone: ` +
        `${(median(wrapped) - floor).toFixed(1)} ms); per-run fixed cost ${(median(short) - SHORT * perStep).toFixed(0)} ms ` +
        `(${LONG}-step runs: ${long.join(', ')} ms; ${SHORT}-step runs: ${short.join(', ')} ms; raw exec ${floors.map((f) => f.toFixed(1)).join(', ')} ms)`,
    );

    let peak = rssMb(worker.pid!);
    const sampler = setInterval(() => {
      peak = Math.max(peak, rssMb(worker.pid!));
    }, 200);
    const t = Date.now();
    const handles = await Promise.all(
      Array.from({ length: concurrent }, (_, i) =>
        client.workflow.start<typeof runbook>('runbook', {
          taskQueue: tq,
          workflowId: `bench-small-${i}`,
          args: [{ runbook: 'bench-small', params: { host: `host:host-${(i % 3) + 1}` } }],
        }),
      ),
    );
    const started = Date.now() - t;
    const results = await Promise.allSettled(handles.map((h) => h.result()));
    clearInterval(sampler);
    const ok = results.filter((r) => r.status === 'fulfilled' && r.value.status === 'succeeded').length;
    const reasons = new Map<string, number>();
    for (const r of results) {
      if (r.status === 'rejected') {
        const e = r.reason as { cause?: { message?: string }; message?: string };
        const why = (e.cause?.message ?? e.message ?? String(r.reason)).slice(0, 160);
        reasons.set(why, (reasons.get(why) ?? 0) + 1);
      }
    }
    for (const [why, n] of reasons) console.log(`  ${n} failed: ${why}`);
    console.log(
      `${concurrent} concurrent small runbooks (2 ssh steps + 1 s sleep each, 3 hosts): ${ok}/${concurrent} succeeded in ` +
        `${((Date.now() - t) / 1000).toFixed(1)} s (all started in ${(started / 1000).toFixed(1)} s); worker peak RSS ${peak.toFixed(0)} MB`,
    );
    const audit = await openAuditStore(auditUrl);
    const report = await verifyStore(audit);
    await audit.close();
    console.log(
      `audit (${audit.description}): ${report.records} records, chain ${report.ok ? 'intact' : `BROKEN at ${report.firstBad?.seq}: ${report.firstBad?.problem}`}`,
    );
  } finally {
    await pool.closeAll();
    await connection.close();
    worker.kill('SIGTERM');
    await new Promise((r) => worker.once('exit', r));
    await fleetDown(path.join(dir, 'fleet'));
    await server.stop();
    if (process.env.RUNBOOK_BENCH_KEEP) console.log(`kept ${dir} (worker's audit trail and the dev server's log)`);
    else fs.rmSync(dir, { recursive: true, force: true });
  }
}
