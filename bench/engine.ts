// Benchmarks of the engine with real parts: a dev server, a real sshd fleet, and a `runbook worker` process.
//  - steps: one run of 20 sequential ssh steps; per-step time against a raw ssh2 exec on a pooled connection.
//  - concurrent: N small runbooks started at once on one worker; all must complete; worker RSS sampled.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { exec } from '../activities/ssh/exec';
import { SshPool } from '../activities/ssh/pool';
import { freePort } from '../common/ports';
import { loadInventory, sshTargetFor } from '../dsl/inventory';
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

async function startWorker(address: string, taskQueue: string, inventory: string, auditUrl: string): Promise<ChildProcess> {
  const child = spawn('node', [path.join(ROOT, 'bin', 'runbook.js'), 'worker'], {
    env: { ...process.env, AUDIT_URL: auditUrl, TEMPORAL_ADDRESS: address, RUNBOOK_TASK_QUEUE: taskQueue, LOG_LEVEL: 'error', RUNBOOK_DIR: path.join(ROOT, 'bench', 'runbooks'), RUNBOOK_INVENTORY: inventory },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('worker did not start')), 60_000);
    child.stdout!.on('data', (c: Buffer) => { out += c.toString(); if (out.includes('Worker       polling')) { clearTimeout(timer); resolve(); } });
  });
  return child;
}

export async function engineBench(concurrent: number): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'runbook-bench-'));
  fs.chmodSync(dir, 0o755);
  const cli = await ensureTemporalCli(() => undefined);
  const server = await startDevServer({ cli: cli.path, port: await freePort(), headless: true, logFile: path.join(dir, 'temporal.log') });
  await fleetUp({ hosts: 3, dir: path.join(dir, 'fleet') });
  const inventory = path.join(dir, 'fleet', 'inventory.yaml');
  const tq = 'bench';
  // Every step writes its change record (fsync'd JSONL by default; AUDIT_URL=postgres://... to bench that).
  const auditUrl = process.env.AUDIT_URL ?? `file:${path.join(dir, 'audit.jsonl')}`;
  const worker = await startWorker(server.address, tq, inventory, auditUrl);
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection });
  const pool = new SshPool();
  try {
    // Floor: raw exec on a pooled connection to the same host.
    const target = sshTargetFor(loadInventory(inventory), 'host-1');
    await pool.use(target, (c) => exec(c, 'true'));
    let t = Date.now();
    for (let i = 0; i < 100; i++) await pool.use(target, (c) => exec(c, 'echo hello'));
    const floor = (Date.now() - t) / 100;

    const runSteps = async (id: string) => client.workflow.execute<typeof runbook>('runbook', { taskQueue: tq, workflowId: id, args: [{ runbook: 'bench-steps', params: { host: 'host:host-1' } }] });
    await runSteps('bench-steps-warm');
    const times: number[] = [];
    for (let r = 0; r < 3; r++) {
      t = Date.now();
      await runSteps(`bench-steps-${r}`);
      times.push((Date.now() - t) / 20);
    }
    const perStep = Math.min(...times);
    console.log(`sequential steps (20 per run, best of 3 runs): ${perStep.toFixed(1)} ms per step; raw ssh2 exec ${floor.toFixed(1)} ms; ` +
      `engine overhead ${(perStep - floor).toFixed(1)} ms per step (runs: ${times.map((x) => x.toFixed(1)).join(', ')} ms/step)`);

    let peak = rssMb(worker.pid!);
    const sampler = setInterval(() => { peak = Math.max(peak, rssMb(worker.pid!)); }, 200);
    t = Date.now();
    const handles = await Promise.all(Array.from({ length: concurrent }, (_, i) => client.workflow.start<typeof runbook>('runbook', {
      taskQueue: tq, workflowId: `bench-small-${i}`, args: [{ runbook: 'bench-small', params: { host: `host:host-${(i % 3) + 1}` } }] })));
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
    console.log(`${concurrent} concurrent small runbooks (2 ssh steps + 1 s sleep each, 3 hosts): ${ok}/${concurrent} succeeded in ` +
      `${((Date.now() - t) / 1000).toFixed(1)} s (all started in ${(started / 1000).toFixed(1)} s); worker peak RSS ${peak.toFixed(0)} MB`);
    const audit = await openAuditStore(auditUrl);
    const report = await verifyStore(audit);
    await audit.close();
    console.log(`audit (${audit.description}): ${report.records} records, chain ${report.ok ? 'intact' : `BROKEN at ${report.firstBad?.seq}: ${report.firstBad?.problem}`}`);
  } finally {
    await pool.closeAll();
    await connection.close();
    worker.kill('SIGTERM');
    await new Promise((r) => worker.once('exit', r));
    await fleetDown(path.join(dir, 'fleet'));
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
