// Benchmark of host locks with real parts: a dev server (in memory) and a `runbook worker` process, no SSH (the
// runbooks' one step is a `notify`, so what is measured is the engine and its locks, not a host).
//  - one host: sequential runs of a one-step one-host runbook: wall time, the run's history events, and the
//    events of the lock records (lock workflows) per run;
//  - fan-out: a one-step runbook on N hosts at once (parallel): wall time, the run's history events, lock events;
//  - rows: how many workflow executions (rows in the UI's list) the runs left beside themselves.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { dataConverterFromEnv } from '../common/codec';
import type { runbook } from '../workflows/runbook';
import { benchServer, startWorker } from './engine';

export interface LocksBenchOptions {
  /** Sequential one-host runs. @default 10 */
  runs: number;
  /** Hosts of the fan-out run. @default 50 */
  hosts: number;
}

export function locksBenchOptions(args: string[]): LocksBenchOptions {
  const num = (flag: string, dflt: number, max: number) => {
    const i = args.indexOf(flag);
    return Math.min(max, Number(i >= 0 ? args[i + 1] : dflt) || dflt);
  };
  return { runs: num('--runs', 10, 200), hosts: num('--hosts', 50, 250) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function writeFixtures(dir: string, hosts: number): { inventory: string; runbooks: string } {
  const runbooks = path.join(dir, 'runbooks');
  fs.mkdirSync(runbooks, { recursive: true });
  const inventory = path.join(dir, 'inventory.yaml');
  const lines = Array.from({ length: hosts }, (_, i) => `  h-${i + 1}: { address: 192.0.2.${i + 1} }`);
  fs.writeFileSync(inventory, ['kind: Inventory', 'vars: { user: bench }', 'hosts:', ...lines, ''].join('\n'));
  const doc = (name: string, targets: string, strategy: string) => `apiVersion: runbooks/v1
kind: Runbook
metadata: { name: ${name}, description: host lock bench, risk: low }
targets: '${targets}'
${strategy}
steps:
  - { id: tell, notify: { channel: bench, message: 'on \${{ target.name }}' } }
`;
  fs.writeFileSync(path.join(runbooks, 'lock-one.yaml'), doc('lock-one', 'host:h-1', ''));
  fs.writeFileSync(path.join(runbooks, 'lock-fanout.yaml'), doc('lock-fanout', 'all', 'strategy: { type: parallel }'));
  return { inventory, runbooks };
}

export async function locksBench(opts: LocksBenchOptions): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'runbook-bench-locks-'));
  const server = await benchServer(dir);
  const { inventory, runbooks } = writeFixtures(dir, opts.hosts);
  const tq = 'bench-locks';
  const worker = await startWorker(server.address, tq, inventory, `file:${path.join(dir, 'audit.jsonl')}`, runbooks);
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection, dataConverter: dataConverterFromEnv(process.env) });
  const events = async (workflowId: string, runId?: string) =>
    (await client.workflow.getHandle(workflowId, runId).fetchHistory()).events?.length ?? 0;
  try {
    const timeRun = async (name: string, id: string) => {
      const t0 = Date.now();
      await client.workflow.execute<typeof runbook>('runbook', {
        taskQueue: tq,
        workflowId: id,
        args: [{ runbook: name }],
      });
      return { ms: Date.now() - t0, events: await events(id) };
    };
    await timeRun('lock-one', 'warm-one');
    await timeRun('lock-fanout', 'warm-fanout');
    const before = await otherExecutions(client);

    const one: { ms: number; events: number }[] = [];
    for (let r = 0; r < opts.runs; r++) one.push(await timeRun('lock-one', `one-${r}`));
    const afterOne = await otherExecutions(client);
    const fan: { ms: number; events: number }[] = [];
    for (let r = 0; r < 3; r++) fan.push(await timeRun('lock-fanout', `fanout-${r}`));
    const afterFan = await otherExecutions(client);

    const perLock = (a: Counted, b: Counted, locks: number) => ((b.events - a.events) / locks).toFixed(1);
    console.log(
      `one host, one step (${opts.runs} runs in a row): median ${median(one.map((o) => o.ms))} ms per run ` +
        `(${one.map((o) => o.ms).join(', ')}); run history ${median(one.map((o) => o.events))} events; ` +
        `lock records: ${perLock(before, afterOne, opts.runs)} events and ${((afterOne.rows - before.rows) / opts.runs).toFixed(2)} new rows per run`,
    );
    console.log(
      `fan-out, ${opts.hosts} hosts at once (3 runs): median ${median(fan.map((o) => o.ms))} ms per run ` +
        `(${fan.map((o) => o.ms).join(', ')}); run history ${median(fan.map((o) => o.events))} events; ` +
        `lock records: ${perLock(afterOne, afterFan, 3 * opts.hosts)} events per host and ${((afterFan.rows - afterOne.rows) / 3).toFixed(1)} new rows per run`,
    );
    console.log(`rows in the workflow list beside the runs: ${afterFan.rows} (${afterFan.types.join(', ')})`);
  } finally {
    await connection.close();
    worker.kill('SIGTERM');
    await new Promise((r) => worker.once('exit', r));
    await server.stop();
    if (process.env.RUNBOOK_BENCH_KEEP) console.log(`kept ${dir}`);
    else fs.rmSync(dir, { recursive: true, force: true });
  }
}

interface Counted {
  /** Executions that are not runbook runs (lock records): rows in the UI's list, a continued-as-new run one each. */
  rows: number;
  /** Their history events, all runs together. */
  events: number;
  types: string[];
}

/** The executions beside the runs (host locks, lock managers) and their history events. */
async function otherExecutions(client: Client): Promise<Counted> {
  // Visibility is eventually consistent: let the last closes land.
  await new Promise((r) => setTimeout(r, 1500));
  let rows = 0;
  const types = new Set<string>();
  let events = 0;
  for await (const w of client.workflow.list({ query: `WorkflowType != 'runbook'` })) {
    rows += 1;
    types.add(w.type);
    events += (await client.workflow.getHandle(w.workflowId, w.runId).fetchHistory()).events?.length ?? 0;
  }
  return { rows, events, types: [...types].sort() };
}
