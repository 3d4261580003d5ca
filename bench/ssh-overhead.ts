// Benchmark: the floor (a raw ssh2 exec on a pooled TCP_NODELAY connection) against our exactly-once SSH step
// (remote wrapper, record on the host) on the same pooled connection, sequentially, on a real sshd.
// Usage (root, needs openssh-server): npm run bench -- ssh [--steps 200]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Secrets } from '../activities/secrets/providers';
import { exec } from '../activities/ssh/exec';
import { SshPool } from '../activities/ssh/pool';
import { runSshStep, type SshAction } from '../activities/ssh/step';
import { DEFAULT_SSH_LOGIN, loadInventory, sshTargetFor } from '../dsl/inventory';
import { fleetDown, fleetUp } from '../fleet/fleet';

function stats(ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  const pct = (p: number) => s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!.toFixed(2);
  const mean = (s.reduce((a, b) => a + b, 0) / s.length).toFixed(2);
  return `mean ${mean} ms, p50 ${pct(50)}, p90 ${pct(90)}, p99 ${pct(99)}`;
}

/** The trivial step both benches time against a raw `echo hello`. */
export const ECHO_STEP: SshAction = { kind: 'ssh', command: 'echo hello', sudo: false, env: {}, expectExit: [0] };

export async function sshOverhead(steps: number): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'runbook-bench-'));
  fs.chmodSync(dir, 0o755);
  await fleetUp({ hosts: 1, dir });
  const pool = new SshPool();
  try {
    const target = sshTargetFor(loadInventory(path.join(dir, 'inventory.yaml')), 'host-1', DEFAULT_SSH_LOGIN);
    await pool.use(target, (c) => exec(c, 'true')); // connect once, outside the timings
    const raw: number[] = [];
    const ours: number[] = [];
    const secrets = new Secrets({ env: process.env });
    for (let i = 0; i < 20; i++) await pool.use(target, (c) => exec(c, 'echo warm')); // warm-up
    for (let i = 0; i < steps; i++) {
      let t = process.hrtime.bigint();
      await pool.use(target, (c) => exec(c, 'echo hello'));
      raw.push(Number(process.hrtime.bigint() - t) / 1e6);
      t = process.hrtime.bigint();
      await runSshStep(pool, secrets, {
        target,
        action: ECHO_STEP,
        key: { workflowId: `bench-${process.pid}`, stepPath: `steps[${i}]` },
      });
      ours.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
    const meanRaw = raw.reduce((a, b) => a + b, 0) / raw.length;
    const meanOurs = ours.reduce((a, b) => a + b, 0) / ours.length;
    console.log(`ssh exec, ${steps} sequential steps on one pooled connection (loopback, real sshd):`);
    console.log(`  raw ssh2 exec (floor)        ${stats(raw)}`);
    console.log(`  exactly-once ssh step (ours) ${stats(ours)}`);
    console.log(`  overhead per step            ${(meanOurs - meanRaw).toFixed(2)} ms (mean)`);
  } finally {
    await pool.closeAll();
    await fleetDown(dir);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
