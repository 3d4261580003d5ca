// Benchmark, side by side with the peers, on one fleet of real sshd hosts (issue: speed):
//  - P1 fan-out: one command (`uptime`) on N hosts. Ours from `node bin/runbook.js run fanout --wait` start to exit
//    (the CLI, a real `runbook worker` process, a dev server); the floor, a fresh Node process doing a raw ssh2
//    fan-out (bench/raw-fanout.ts); `parallel-ssh -p N`; `ansible all -f N -m command`. Each repeat runs every tool
//    once, in turn, so all see the same machine (this VM's speed drifts over minutes).
//  - P5 fixed cost: a one-step one-host run: CLI start to exit, and the run in history (its start event to its
//    close event, the server's timestamps).
// Prints median/min/max per case and the ratios to the floor; writes everything to bench/results/fanout-*.json.
// `--smoke` (CI): 3 hosts, one repeat, no warm-up, so the bench cannot rot; its figures mean nothing.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { eventSubject, eventTypeName } from '../common/history-events';
import { dataConverterFromEnv } from '../common/codec';
import { DEFAULT_SSH_LOGIN, loadInventory, sshTargetFor } from '../dsl/inventory';
import { fleetDown, fleetUp } from '../fleet/fleet';
import { benchServer, startWorker } from './engine';

const ROOT = path.join(__dirname, '..', '..');

export interface FanoutOptions {
  hosts: number;
  repeats: number;
  warmup: number;
  smoke: boolean;
}

export function fanoutOptions(args: string[]): FanoutOptions {
  const num = (flag: string, dflt: number, max: number) => {
    const i = args.indexOf(flag);
    const v = i >= 0 ? Number(args[i + 1]) : dflt;
    if (!Number.isInteger(v) || v < 0 || v > max) throw new Error(`${flag}: a whole number from 0 to ${max}`);
    return v;
  };
  const smoke = args.includes('--smoke');
  return {
    smoke,
    hosts: num('--hosts', smoke ? 3 : 50, 200),
    repeats: Math.max(1, num('--repeats', smoke ? 1 : 7, 50)),
    warmup: num('--warmup', smoke ? 0 : 1, 10),
  };
}

interface Timed {
  ms: number;
  /** The run's start-to-close time in history (ours only). */
  historyMs?: number;
  /** The run's workflow id (ours only). */
  workflowId?: string;
}

/** Runs a command to its end; its wall time. Throws (with its stderr's tail) unless it exits 0. */
function timed(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ ms: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const ms = performance.now() - t0;
      if (code === 0) resolve({ ms, stdout });
      else reject(new Error(`${path.basename(cmd)} ${args.slice(0, 3).join(' ')} exited ${code}: ${stderr.trim()}`));
    });
  });
}

/** Node flags for our CLI's runs (RUNBOOK_BENCH_CLI_NODE_ARGS, e.g. `--cpu-prof --cpu-prof-dir=DIR`). */
const CLI_NODE_ARGS = (process.env.RUNBOOK_BENCH_CLI_NODE_ARGS ?? '').split(' ').filter(Boolean);

const which = (cmd: string) =>
  (process.env.PATH ?? '').split(':').find((d) => d && fs.existsSync(path.join(d, cmd))) !== undefined;

function stats(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)]!, min: s[0]!, max: s[s.length - 1]!, n: s.length };
}

export async function fanoutBench(opts: FanoutOptions): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'runbook-bench-fanout-'));
  fs.chmodSync(dir, 0o755); // the fleet's users reach their homes below it
  const log = (line: string) => console.log(line);
  log(
    `fan-out bench: ${opts.hosts} hosts, ${opts.warmup} warm-up + ${opts.repeats} repeats${opts.smoke ? ' (smoke)' : ''}`,
  );
  const server = await benchServer(dir);
  /** What to undo, in reverse order, however the bench ends. */
  const cleanups: (() => Promise<unknown>)[] = [];
  try {
    const fleetDir = path.join(dir, 'fleet');
    const fleet = await fleetUp({ hosts: opts.hosts, dir: fleetDir });
    cleanups.push(() => fleetDown(fleetDir));
    const inventory = path.join(fleetDir, 'inventory.yaml');
    const runbooks = path.join(dir, 'runbooks');
    fs.mkdirSync(runbooks);
    const doc = (name: string, targets: string, strategy: string, run: string) => `apiVersion: runbooks/v1
kind: Runbook
metadata: { name: ${name}, description: fan-out bench, risk: low }
targets: '${targets}'
${strategy}
steps:
  - { id: cmd, ssh: { run: '${run}' } }
`;
    fs.writeFileSync(
      path.join(runbooks, 'fanout.yaml'),
      doc('fanout', 'all', 'strategy: { type: parallel }', 'uptime'),
    );
    fs.writeFileSync(path.join(runbooks, 'one.yaml'), doc('one', 'host:host-1', '', 'true'));
    const tq = 'bench-fanout';
    const worker = await startWorker(server.address, tq, inventory, `file:${path.join(dir, 'audit.jsonl')}`, runbooks);
    cleanups.push(() => {
      worker.kill('SIGTERM');
      return new Promise((r) => worker.once('exit', r));
    });
    const connection = await Connection.connect({ address: server.address });
    cleanups.push(() => connection.close());
    const client = new Client({ connection, dataConverter: dataConverterFromEnv(process.env) });

    // The peers' inputs, from the same inventory.
    const inv = loadInventory(inventory);
    const targets = fleet.hosts.map((h) => sshTargetFor(inv, h.name, DEFAULT_SSH_LOGIN));
    const key = targets[0]!.identityFile!;
    const knownHosts = targets[0]!.knownHosts;
    const targetsFile = path.join(dir, 'targets.json');
    fs.writeFileSync(
      targetsFile,
      JSON.stringify(targets.map(({ address, port, user, identityFile }) => ({ address, port, user, identityFile }))),
    );
    const psshHosts = path.join(dir, 'pssh-hosts');
    fs.writeFileSync(psshHosts, targets.map((t) => `${t.user}@${t.address}:${t.port ?? 22}`).join('\n') + '\n');
    const ansibleInventory = path.join(dir, 'ansible.ini');
    fs.writeFileSync(
      ansibleInventory,
      [
        '[fleet]',
        ...targets.map(
          (t) => `${t.name} ansible_host=${t.address} ansible_port=${t.port ?? 22} ansible_user=${t.user}`,
        ),
        '[fleet:vars]',
        `ansible_ssh_private_key_file=${key}`,
        `ansible_ssh_common_args='-o UserKnownHostsFile=${knownHosts} -o StrictHostKeyChecking=yes'`,
        'ansible_python_interpreter=/usr/bin/python3',
        '',
      ].join('\n'),
    );
    const cliEnv = {
      ...process.env,
      TEMPORAL_ADDRESS: server.address,
      RUNBOOK_TASK_QUEUE: tq,
      RUNBOOK_DIR: runbooks,
      RUNBOOK_INVENTORY: inventory,
      LOG_LEVEL: 'error',
    };
    const historyMs = async (workflowId: string) => {
      const events = (await client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
      const at = (e: (typeof events)[number] | undefined) =>
        Number(e?.eventTime?.seconds ?? 0) * 1000 + Math.round((e?.eventTime?.nanos ?? 0) / 1e6);
      return at(events.at(-1)) - at(events[0]);
    };
    const ours = async (name: string): Promise<Timed> => {
      const r = await timed(
        'node',
        [...CLI_NODE_ARGS, path.join(ROOT, 'bin', 'runbook.js'), 'run', name, '--wait', '--json'],
        cliEnv,
      );
      const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { workflowId: string; status: string };
      if (out.status !== 'succeeded') throw new Error(`${name}: ${out.status}`);
      return { ms: r.ms, historyMs: await historyMs(out.workflowId), workflowId: out.workflowId };
    };
    const sshOpts = ['-i', key, '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'StrictHostKeyChecking=yes'];
    const cases: Record<string, () => Promise<Timed>> = {
      ours: () => ours('fanout'),
      raw: () => timed('node', [path.join(__dirname, 'raw-fanout.js'), targetsFile, 'uptime']),
    };
    const psshCmd = ['parallel-ssh', 'pssh'].find(which);
    if (psshCmd)
      cases['parallel-ssh'] = () =>
        timed(psshCmd, ['-p', String(opts.hosts), '-h', psshHosts, '-t', '60', '-x', sshOpts.join(' '), 'uptime']);
    if (which('ansible'))
      cases.ansible = () =>
        timed('ansible', ['all', '-i', ansibleInventory, '-f', String(opts.hosts), '-m', 'command', '-a', 'uptime'], {
          ...process.env,
          ANSIBLE_LOCALHOST_WARNING: 'False',
          ANSIBLE_DEPRECATION_WARNINGS: 'False',
        });
    const missing = ['parallel-ssh', 'ansible'].filter((p) => !cases[p]);
    if (missing.length) log(`not installed, left out: ${missing.join(', ')} (apt-get install pssh ansible-core)`);
    cases['one-host run'] = () => ours('one');

    const results: Record<string, Timed[]> = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
    {
      for (let r = 0; r < opts.warmup + opts.repeats; r++) {
        for (const [name, run] of Object.entries(cases)) {
          const t = await run();
          if (r >= opts.warmup) results[name]!.push(t);
        }
        if (r >= opts.warmup) log(`  repeat ${r - opts.warmup + 1}/${opts.repeats} done`);
      }
      const floor = stats(results.raw!.map((t) => t.ms)).median;
      const rows = Object.entries(results).map(([name, ts]) => {
        const wall = stats(ts.map((t) => t.ms));
        const history = ts[0]?.historyMs !== undefined ? stats(ts.map((t) => t.historyMs!)) : undefined;
        return { name, wall, history, vsFloor: name === 'one-host run' ? undefined : wall.median / floor };
      });
      const f = (x: number) => `${Math.round(x)} ms`;
      for (const row of rows)
        log(
          `${row.name.padEnd(13)} wall median ${f(row.wall.median)} (min ${f(row.wall.min)}, max ${f(row.wall.max)})` +
            (row.vsFloor !== undefined ? `, ${row.vsFloor.toFixed(2)}x the raw ssh2 floor` : '') +
            (row.history
              ? `; in history ${f(row.history.median)} (min ${f(row.history.min)}, max ${f(row.history.max)})`
              : ''),
        );
      // Where the time of a one-host run goes: its history events, each with its time since the run's start.
      const last = results['one-host run']!.at(-1)!.workflowId!;
      const events = (await client.workflow.getHandle(last).fetchHistory()).events ?? [];
      const ms = (e: (typeof events)[number]) =>
        Number(e.eventTime?.seconds ?? 0) * 1000 + (e.eventTime?.nanos ?? 0) / 1e6;
      const t0 = ms(events[0]!);
      const timeline = events.map((e) => {
        const type = eventTypeName(e).replace('EVENT_TYPE_', '').toLowerCase();
        const what = eventSubject(e);
        return `+${(ms(e) - t0).toFixed(1)} ${type}${what ? ` ${what}` : ''}`;
      });
      log(`timeline of the last one-host run (${last}):\n  ${timeline.join('\n  ')}`);
      const out = path.join(ROOT, 'bench', 'results');
      fs.mkdirSync(out, { recursive: true });
      const file = path.join(out, `fanout-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
      fs.writeFileSync(
        file,
        JSON.stringify(
          { options: opts, machine: { cpus: os.cpus().length, node: process.version }, rows, results, timeline },
          null,
          2,
        ),
      );
      log(`results: ${path.relative(process.cwd(), file)}`);
    }
  } finally {
    for (const undo of cleanups.reverse())
      await undo().catch((err: unknown) => log(`cleanup: ${(err as Error).message}`));
    await server.stop();
    if (process.env.RUNBOOK_BENCH_KEEP) log(`kept ${dir}`);
    else fs.rmSync(dir, { recursive: true, force: true });
  }
}
