// Integration (real everything, as a newcomer): the README's quick start, followed literally on a fresh clone.
// The commands are read from the README's own code blocks, so a README that drifts from what works fails here:
// `npm ci`, `npm start` (the embedded dev server, the UI, the worker), then the local-fleet walk-through line by
// line (`fleet up`, the export, `npm start` again, `plan` and `run` of a runbook file, `exec`, `audit show`,
// `fleet down`). Each `npm start` runs in the background, as in its own terminal, and is stopped with Ctrl-C.
// Needs root (the fleet), the default ports of the README (7233, 8233, 9280) free, and the npm registry.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { waitUntil } from '../harness/processes';

const repo = path.join(__dirname, '..', '..');
const readme = fs.readFileSync(path.join(repo, 'README.md'), 'utf8');

/** The lines of the first ```sh block after `heading`, as a reader copies them. */
function shBlock(heading: string): string[] {
  const at = readme.indexOf(heading);
  if (at < 0) throw new Error(`README.md has no "${heading}"`);
  const m = /```sh\n([\s\S]*?)```/.exec(readme.slice(at));
  if (!m) throw new Error(`README.md has no sh block after "${heading}"`);
  return m[1]!.split('\n').filter((l) => l.trim() && !l.trim().startsWith('#'));
}

/** The environment of a new terminal: nothing of this test run's own settings. */
function freshEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if (!/^(RUNBOOK_|TEMPORAL_|AUDIT_URL$|JEST_|NODE_OPTIONS$)/.test(k)) env[k] = v;
  return { ...env, ...extra, CI: 'true' };
}

const portFree = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });

interface Terminal {
  child: ChildProcess;
  out: () => string;
  exit: Promise<number | null>;
}

/** A command left running, as in another terminal. */
function background(line: string, cwd: string, env: NodeJS.ProcessEnv): Terminal {
  const child = spawn('bash', ['-c', `exec ${line}`], { cwd, env, detached: true });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, out: () => out, exit };
}

/**
 * Ctrl-C in that terminal (SIGINT to the process group, as a terminal sends it); resolves once it has exited.
 * npm re-raises a signal its script got, so `npm start` ends by SIGINT whatever the engine's own exit status: the
 * engine's clean stop is what its last line says.
 */
async function interrupt(t: Terminal): Promise<void> {
  if (t.child.exitCode !== null || t.child.signalCode !== null) return;
  process.kill(-t.child.pid!, 'SIGINT');
  const timer = setTimeout(() => process.kill(-t.child.pid!, 'SIGKILL'), 60_000);
  try {
    await t.exit;
  } finally {
    clearTimeout(timer);
  }
}

/** `npm start` stopped by Ctrl-C: the worker, then the dev server, stopped in order. */
async function stopStart(t: Terminal): Promise<void> {
  await interrupt(t);
  expect(t.out()).toContain('stopping the Temporal dev server ...');
  expect(t.out().trimEnd()).toMatch(/stopped$/);
  expect(t.out()).not.toMatch(/unexpected error|\n\s+at /);
}

test('the README quick start works as written on a fresh clone', async () => {
  const first = shBlock('## Quick start');
  const fleet = shBlock('### Try it on a local fleet');
  expect(first[0]).toMatch(/^npm ci && npm start\b/);
  expect(fleet.some((l) => l.startsWith('npm start'))).toBe(true);

  // The README's ports must be free: wait for other tests' stacks to go (bounded), then say which one is taken.
  for (const port of [7233, 8233, 9280])
    await waitUntil(() => portFree(port), `port ${port} (the README's default) to be free`, 180_000);

  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'runbook-readme-'));
  const clone = path.join(root, 'runbook');
  const terminals: Terminal[] = [];
  let fleetDir: string | undefined;
  try {
    execFileSync('git', ['clone', '-q', repo, clone], { stdio: 'pipe' });
    fs.symlinkSync(path.join(repo, '..', 'shared'), path.join(root, 'shared'), 'dir');

    // Block 1: `npm ci && npm start` (the tests line is what runs this test: not again).
    const ci = spawnSync('bash', ['-c', 'npm ci --no-audit --no-fund --loglevel=error'], {
      cwd: clone,
      env: freshEnv(),
      encoding: 'utf8',
      timeout: 300_000,
    });
    expect({ status: ci.status, stderr: ci.stderr.slice(-2000) }).toEqual({ status: 0, stderr: expect.any(String) });
    const start = background(first[0]!.replace(/^npm ci && /, '').replace(/\s+#.*$/, ''), clone, freshEnv());
    terminals.push(start);
    await waitUntil(
      async () => start.out().includes('Worker       polling task queue "runbooks"') || start.child.exitCode !== null,
      'npm start to print that the worker polls',
      240_000,
    );
    expect(start.out()).toContain('Temporal UI  http://127.0.0.1:8233/namespaces/default/workflows');
    expect((await fetch('http://127.0.0.1:8233/')).status).toBe(200);
    await stopStart(start);
    terminals.pop();

    // Block 2, line by line; `export` lines carry over to the lines after them, as in a terminal.
    const exported: Record<string, string> = {};
    const run = (line: string) =>
      spawnSync('bash', ['-c', line], { cwd: clone, env: freshEnv(exported), encoding: 'utf8', timeout: 240_000 });
    const outputs: Record<string, string> = {};
    for (const raw of fleet) {
      const line = raw.replace(/\s+#.*$/, '');
      const exp = /^export\s+(.*)$/.exec(line);
      if (exp) {
        for (const pair of exp[1]!.trim().split(/\s+/)) {
          const [k, ...v] = pair.split('=');
          exported[k!] = v.join('=');
        }
        continue;
      }
      if (line.startsWith('npm start')) {
        const dev = background(line, clone, freshEnv(exported));
        terminals.push(dev);
        await waitUntil(
          async () => dev.out().includes('Worker       polling task queue "runbooks"') || dev.child.exitCode !== null,
          `"${line}" to start the worker`,
          240_000,
        );
        expect(dev.child.exitCode).toBeNull();
        continue;
      }
      const dir = /fleet -- up .*--dir (\S+)/.exec(line)?.[1];
      if (dir) fleetDir = dir;
      const r = run(line);
      outputs[line] = `${r.stdout}${r.stderr}`;
      expect({ line, status: r.status, output: r.status === 0 ? '' : outputs[line] }).toEqual({
        line,
        status: 0,
        output: '',
      });
      if (/fleet -- down/.test(line)) fleetDir = undefined;
    }
    const find = (re: RegExp) => Object.entries(outputs).find(([l]) => re.test(l))?.[1] ?? '';
    expect(find(/runbook run .*--wait/)).toMatch(/fleet-touch succeeded/);
    expect(find(/runbook run .*--wait/)).not.toMatch(/Channel has been shut down|\n\s+at /);
    expect(find(/runbook exec/)).toMatch(/load average/);
    const audit = find(/runbook audit show/);
    expect(audit).toMatch(/\bwrite\s+host-1\b/); // steps by id, not position
    expect(audit).toContain(`manual:${os.userInfo().username}`);
    for (const t of [...terminals].reverse()) await stopStart(t);
    terminals.length = 0;
  } finally {
    for (const t of terminals) await interrupt(t).catch(() => undefined);
    if (fleetDir)
      spawnSync('node', [path.join(clone, 'bin', 'runbook.js'), 'fleet', 'down', '--dir', fleetDir], { stdio: 'pipe' });
    fs.rmSync(root, { recursive: true, force: true });
  }
}, 900_000);
