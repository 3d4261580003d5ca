// Test harness (Node side): the alert receiver as a real `runbook serve` process on a free loopback port, for
// tests that post alerts (directly, or through a real Alertmanager) and watch the remediations start.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { freePort } from '../../common/ports';
import { temporalAddress } from './env';
import { stopProcess } from './processes';

const bin = path.join(__dirname, '..', '..', 'bin', 'runbook.js');

export interface ReceiverSetup {
  /** The task queue of the worker that runs the alert guards and remediations. */
  taskQueue: string;
  runbookDir: string;
  inventory: string;
  /** Its bearer token (RUNBOOK_RECEIVER_TOKEN). */
  token: string;
  /** /healthz must report at least this many alert rules once it listens. */
  minRules: number;
}

export class ReceiverProcess {
  child?: ChildProcess;
  log = '';
  starts = 0;
  constructor(
    readonly port: number,
    private readonly setup: ReceiverSetup,
    private readonly extraEnv: NodeJS.ProcessEnv = {},
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts it; resolves once it listens and its health endpoint sees the alert rules. */
  async start(): Promise<void> {
    this.starts += 1;
    const child = spawn('node', [bin, 'serve', '--ip', '127.0.0.1', '--port', String(this.port)], {
      env: {
        ...process.env,
        TEMPORAL_ADDRESS: temporalAddress(),
        RUNBOOK_TASK_QUEUE: this.setup.taskQueue,
        RUNBOOK_DIR: this.setup.runbookDir,
        RUNBOOK_INVENTORY: this.setup.inventory,
        RUNBOOK_RECEIVER_TOKEN: this.setup.token,
        LOG_LEVEL: 'warn',
        ...this.extraEnv,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    const append = (c: Buffer) => (this.log = (this.log + c.toString()).slice(-20_000));
    child.stderr!.on('data', append);
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(
        () => reject(new Error(`runbook serve did not listen on ${this.url} within 30 s:\n${out}\n${this.log}`)),
        30_000,
      );
      child.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        append(c);
        if (out.includes('alert receiver on')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`runbook serve exited (${code ?? signal}) before listening:\n${out}\n${this.log}`));
      });
    });
    const health = await fetch(`${this.url}/healthz`, { signal: AbortSignal.timeout(5000) });
    const body = (await health.json()) as { status: string; rules: number };
    if (health.status !== 200 || body.rules < this.setup.minRules)
      throw new Error(
        `runbook serve's /healthz answered ${health.status} with ${body.rules} rules (want ${this.setup.minRules}):\n${this.log}`,
      );
  }

  /** SIGKILL: in-flight requests die with it, as they would on a crash. */
  async kill(): Promise<void> {
    if (this.child) await stopProcess(this.child, 'SIGKILL');
  }

  async stop(): Promise<void> {
    if (this.child) await stopProcess(this.child, 'SIGTERM');
  }
}

/** Runs `fn` with a receiver started on a free port, stopped after. */
export async function withReceiver<T>(
  setup: ReceiverSetup,
  fn: (r: ReceiverProcess) => Promise<T>,
  extraEnv: NodeJS.ProcessEnv = {},
): Promise<T> {
  const r = new ReceiverProcess(await freePort(), setup, extraEnv);
  await r.start();
  try {
    return await fn(r);
  } finally {
    await r.stop();
  }
}
