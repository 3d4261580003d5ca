// Test harness (Node side). Real `runbook worker` processes for tests that kill or restart them, and CLI runs.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

const runbookBin = path.join(__dirname, '..', '..', 'bin', 'runbook.js');

/** Starts `runbook worker` against `address` on `taskQueue`; resolves once it polls. */
export function startWorkerProcess(
  address: string,
  taskQueue: string,
  env: NodeJS.ProcessEnv = {},
): Promise<ChildProcess> {
  const child = spawn('node', [runbookBin, 'worker'], {
    env: { ...process.env, TEMPORAL_ADDRESS: address, RUNBOOK_TASK_QUEUE: taskQueue, LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker did not start: ${out}`)), 60_000);
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('Worker       polling')) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`worker exited ${code}: ${out}`));
    });
  });
}

/** Stops a process (no-op when it already exited or was killed) and waits for it. */
export async function stopProcess(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  await exited;
}

/** Polls `pred` every 100 ms until it holds, or throws after `timeoutMs`. */
export async function waitUntil(pred: () => Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** What a finished CLI process said, and its exit status. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the built `runbook` CLI to its end in a child process (so a worker under test in this process keeps running)
 * with `env` added to this process's environment. Never rejects: a failing command is its exit status.
 */
export function runCliProcess(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  opts: { timeout?: number; maxBuffer?: number } = {},
): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile('node', [runbookBin, ...args], { env: { ...process.env, ...env }, ...opts }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}
