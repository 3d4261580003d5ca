// Integration: `runbook dev` (what `npm start` runs) as a real process: embedded dev server with SQLite, Web
// UI, polling worker, an ad hoc command over SSH through `runbook exec`, a clean Ctrl-C, and history that
// survives a restart. Plus the start-up failures an operator meets, each as one plain paragraph.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Connection, Client } from '@temporalio/client';
import { freePort } from '../../common/ports';
import { fleetDir, testRoot } from '../harness/env';

const runbook = path.join(__dirname, '..', '..', 'bin', 'runbook.js');

interface Dev {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
}

function startDev(args: string[], env: NodeJS.ProcessEnv = {}): Dev {
  const child = spawn('node', [runbook, 'dev', ...args], {
    env: { ...process.env, ...env, TEMPORAL_ADDRESS: undefined },
  });
  let out = '';
  let err = '';
  child.stdout?.on('data', (c: Buffer) => {
    out += c.toString();
  });
  child.stderr?.on('data', (c: Buffer) => {
    err += c.toString();
  });
  return { child, stdout: () => out, stderr: () => err };
}

async function waitFor(pred: () => boolean, what: string, timeoutMs: number, dev: Dev): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline || dev.child.exitCode !== null) {
      throw new Error(`${what} did not happen; stdout:\n${dev.stdout()}\nstderr:\n${dev.stderr().slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

function exited(child: ChildProcess): Promise<number | null> {
  return child.exitCode !== null
    ? Promise.resolve(child.exitCode)
    : new Promise((r) => child.once('exit', (code) => r(code)));
}

async function listWorkflowIds(address: string): Promise<string[]> {
  const connection = await Connection.connect({ address });
  try {
    const ids: string[] = [];
    for await (const wf of new Client({ connection }).workflow.list()) ids.push(wf.workflowId);
    return ids;
  } finally {
    await connection.close();
  }
}

test('runbook dev serves the UI and a worker, runs an SSH command, stops on SIGINT, and keeps history', async () => {
  const dataDir = path.join(testRoot(), 'dev-data');
  const port = await freePort();
  const uiPort = await freePort();
  const args = ['--data-dir', dataDir, '--port', String(port), '--ui-port', String(uiPort)];
  const address = `127.0.0.1:${port}`;

  const dev = startDev(args);
  await waitFor(
    () => dev.stdout().includes('Worker       polling task queue "runbooks"'),
    'worker polling',
    120_000,
    dev,
  );
  expect(dev.stdout()).toContain(`Temporal UI  http://127.0.0.1:${uiPort}/namespaces/default/workflows`);
  expect((await fetch(`http://127.0.0.1:${uiPort}/`)).status).toBe(200);
  expect(fs.existsSync(path.join(dataDir, 'temporal.db'))).toBe(true);

  const exec = spawnSync(
    'node',
    [
      runbook,
      'exec',
      '--json',
      '-i',
      path.join(fleetDir(), 'inventory.yaml'),
      '-H',
      'host-3',
      '--',
      'echo',
      'hello',
      'from',
      '$(hostname -I >/dev/null; whoami)',
    ],
    { encoding: 'utf8', env: { ...process.env, TEMPORAL_ADDRESS: address } },
  );
  expect(exec.stderr).toBe('');
  const result = JSON.parse(exec.stdout) as { workflowId: string; stdout: string; exitCode: number };
  expect(result.stdout).toMatch(/^hello from rb[0-9a-f]{6}h3\n$/);
  expect(result.exitCode).toBe(0);

  dev.child.kill('SIGINT');
  expect(await exited(dev.child)).toBe(0);
  expect(dev.stdout()).toContain('SIGINT: stopping the worker');
  expect(dev.stdout().trimEnd().endsWith('stopped')).toBe(true);

  const again = startDev(args);
  try {
    await waitFor(
      () => again.stdout().includes('Worker       polling'),
      'worker polling after restart',
      120_000,
      again,
    );
    expect(await listWorkflowIds(address)).toContain(result.workflowId);
  } finally {
    again.child.kill('SIGTERM');
    expect(await exited(again.child)).toBe(0);
  }
}, 300_000);

test('a port already in use is named with what to do', async () => {
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  const port = (blocker.address() as net.AddressInfo).port;
  try {
    const dev = startDev(['--data-dir', path.join(testRoot(), 'dev-busy'), '--port', String(port), '--headless']);
    expect(await exited(dev.child)).toBe(2);
    expect(dev.stderr()).toBe(
      `runbook: Port ${port} on 127.0.0.1 (Temporal frontend) is already in use, probably by ` +
        'another Temporal dev server or an earlier `runbook dev` still running. Stop that process (see ' +
        `\`ss -ltnp 'sport = :${port}'\`), or choose another port with --port.\n`,
    );
  } finally {
    blocker.close();
  }
});

test('a corrupt database in the data dir is reported with how to move it aside', async () => {
  const dataDir = path.join(testRoot(), 'dev-corrupt');
  fs.mkdirSync(dataDir, { recursive: true });
  const db = path.join(dataDir, 'temporal.db');
  fs.writeFileSync(db, 'this is not a sqlite database, it is a text file that got here by mistake\n');
  const dev = startDev(['--data-dir', dataDir, '--port', String(await freePort()), '--headless']);
  expect(await exited(dev.child)).toBe(2);
  expect(dev.stderr()).toBe(
    `runbook: The Temporal database ${db} is corrupt (its header is not a SQLite header), so ` +
      `the dev server cannot start on it. Move it aside to start with an empty history (mv ${db} ${db}.corrupt; also ` +
      `move any temporal.db-wal and -shm files beside it), or point --data-dir at another directory.\n`,
  );
});

test('an unreachable TEMPORAL_ADDRESS is one clear paragraph, for the worker and for exec', async () => {
  const port = await freePort();
  const env = { ...process.env, TEMPORAL_ADDRESS: `127.0.0.1:${port}` };
  const expected =
    `runbook: Cannot reach the Temporal server at 127.0.0.1:${port} (namespace default): connection ` +
    'refused. Check TEMPORAL_ADDRESS and that the server is running and reachable from here; for Temporal Cloud also ' +
    'set TEMPORAL_API_KEY (or TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH). Unset TEMPORAL_ADDRESS ' +
    'to use the embedded dev server of `runbook dev`.\n';
  const worker = spawnSync('node', [runbook, 'worker'], { encoding: 'utf8', env });
  expect(worker.status).toBe(2);
  expect(worker.stderr).toBe(expected);
  const exec = spawnSync(
    'node',
    [runbook, 'exec', '-i', path.join(fleetDir(), 'inventory.yaml'), '-H', 'host-1', '--', 'true'],
    { encoding: 'utf8', env },
  );
  expect(exec.status).toBe(2);
  expect(exec.stderr).toBe(expected);
});

test('no Temporal CLI, no Go and no internet: setup says what to do instead of a stack trace', () => {
  const home = path.join(testRoot(), 'no-go-home');
  fs.mkdirSync(home, { recursive: true });
  const r = spawnSync('node', [runbook, 'setup'], {
    encoding: 'utf8',
    env: {
      PATH: path.dirname(process.execPath) + ':/usr/bin:/bin',
      HOME: home,
      RUNBOOK_TOOLS_DIR: path.join(home, 'tools'),
    },
  });
  expect(r.status).toBe(2);
  expect(r.stderr).toMatch(
    /^runbook: Cannot find or build the Temporal CLI: it is not on PATH, in ~\/go\/bin or in .*\/tools, Go is not installed, and /,
  );
  expect(r.stderr).toContain('set TEMPORAL_ADDRESS to use an existing Temporal server');
  expect(r.stderr).not.toMatch(/\n\s+at /);
});
