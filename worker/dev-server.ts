// Node side. Starts and stops the Temporal CLI's dev server (frontend + embedded Web UI) as a child process,
// with SQLite persistence when a database file is given, and the engine's search attributes registered.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { UserError } from '../common/errors';
import { isPortFree } from '../common/ports';
import { SEARCH_ATTRIBUTES } from '../workflows/search-attributes';

export interface DevServerOptions {
  /** Path of the `temporal` binary. */
  cli: string;
  /** @default '127.0.0.1' */
  ip?: string;
  /** Frontend gRPC port. @default 7233 */
  port?: number;
  /** Web UI port; ignored when `headless`. @default port + 1000 */
  uiPort?: number;
  /** Serve no Web UI. @default false */
  headless?: boolean;
  /** SQLite file for persistence (WAL journal); in-memory when absent. */
  dbFile?: string;
  /** @default 'default' */
  namespace?: string;
  /** Where the server's own log goes. */
  logFile: string;
  /** Extra `temporal server start-dev` arguments (e.g. `--ui-codec-endpoint`). */
  extraArgs?: string[];
  /** Give up waiting for the frontend after this long. @default 90000 */
  readyTimeoutMs?: number;
}

export interface DevServer {
  address: string;
  namespace: string;
  /** The Web UI's URL, or undefined when headless. */
  uiUrl: string | undefined;
  pid: number;
  stop(): Promise<void>;
}

const SQLITE_MAGIC = Buffer.from('SQLite format 3\0', 'latin1');

/** Throws a UserError when `dbFile` exists but is not a SQLite database (a corrupt or foreign data dir). */
export function checkDatabaseFile(dbFile: string): void {
  if (!fs.existsSync(dbFile)) return;
  const stat = fs.statSync(dbFile);
  if (stat.isDirectory()) {
    throw new UserError(
      `The Temporal database path ${dbFile} is a directory, not a SQLite file. Remove it or ` +
        'choose another data directory with --data-dir.',
    );
  }
  if (stat.size === 0) return;
  const head = Buffer.alloc(SQLITE_MAGIC.length);
  const fd = fs.openSync(dbFile, 'r');
  try {
    fs.readSync(fd, head, 0, head.length, 0);
  } finally {
    fs.closeSync(fd);
  }
  if (!head.equals(SQLITE_MAGIC)) {
    throw corruptDatabase(dbFile, 'its header is not a SQLite header');
  }
}

function corruptDatabase(dbFile: string, why: string): UserError {
  return new UserError(
    `The Temporal database ${dbFile} is corrupt (${why}), so the dev server cannot start ` +
      `on it. Move it aside to start with an empty history (mv ${dbFile} ${dbFile}.corrupt; also move any ` +
      `${path.basename(dbFile)}-wal and -shm files beside it), or point --data-dir at another directory.`,
  );
}

async function assertPortFree(ip: string, port: number, what: string, flag: string): Promise<void> {
  if (!(await isPortFree(port, ip))) {
    throw new UserError(
      `Port ${port} on ${ip} (${what}) is already in use, probably by another Temporal dev ` +
        `server or an earlier \`runbook dev\` still running. Stop that process (see \`ss -ltnp 'sport = :${port}'\`), ` +
        `or choose another port with ${flag}.`,
    );
  }
}

function logTail(file: string, bytes = 3000): string {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text.slice(-bytes).trim();
  } catch {
    return '';
  }
}

async function waitUntilServing(
  address: string,
  namespace: string,
  child: ChildProcess,
  timeoutMs: number,
  exited: () => boolean,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exited()) throw new Error('exited');
    try {
      const connection = await Connection.connect({ address, connectTimeout: 1000 });
      try {
        await connection.workflowService.describeNamespace({ namespace });
        return;
      } finally {
        await connection.close();
      }
    } catch {
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new UserError(`The Temporal dev server did not answer on ${address} within ${timeoutMs / 1000} s.`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/**
 * Starts `temporal server start-dev` and resolves once its frontend serves `namespace`. The child runs in its
 * own process group, so a Ctrl-C reaches our process first and we stop the server after the worker drained.
 */
export async function startDevServer(opts: DevServerOptions): Promise<DevServer> {
  const ip = opts.ip ?? '127.0.0.1';
  const port = opts.port ?? 7233;
  const uiPort = opts.uiPort ?? port + 1000;
  const namespace = opts.namespace ?? 'default';
  await assertPortFree(ip, port, 'Temporal frontend', '--port');
  if (!opts.headless) await assertPortFree(ip, uiPort, 'Temporal Web UI', '--ui-port');

  const args = [
    'server',
    'start-dev',
    '--ip',
    ip,
    '--port',
    String(port),
    '--namespace',
    namespace,
    '--log-level',
    'warn',
    '--log-format',
    'json',
  ];
  if (opts.headless) args.push('--headless');
  else args.push('--ui-port', String(uiPort));
  if (opts.dbFile) {
    checkDatabaseFile(opts.dbFile);
    args.push('--db-filename', opts.dbFile, '--sqlite-pragma', 'journal_mode=wal');
  }
  for (const { key, cliType } of SEARCH_ATTRIBUTES) args.push('--search-attribute', `${key.name}=${cliType}`);
  // The dev server has one history shard, which reads its queue of new tasks at most 20 times a second by default:
  // each hand-off of a run (start, prepare, host lock, first step, ...) then waits up to 50 ms. Measured with
  // `npm run bench -- alerts`: alert to first command p50 341-408 ms with the default, 86-113 ms with this.
  args.push('--dynamic-config-value', 'history.transferProcessorMaxPollRPS=1000');
  args.push(...(opts.extraArgs ?? []));

  fs.mkdirSync(path.dirname(opts.logFile), { recursive: true });
  const log = fs.openSync(opts.logFile, 'a');
  const child = spawn(opts.cli, args, { stdio: ['ignore', log, log], detached: true });
  fs.closeSync(log);
  let exitCode: number | null | undefined;
  const exitedPromise = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exitCode = code ?? (signal ? -1 : 0);
      resolve();
    }),
  );
  const address = `${ip}:${port}`;
  try {
    await waitUntilServing(address, namespace, child, opts.readyTimeoutMs ?? 90_000, () => exitCode !== undefined);
  } catch (err) {
    if (exitCode === undefined) throw err;
    const tail = logTail(opts.logFile);
    if (opts.dbFile && /not a database|malformed|corrupt/i.test(tail)) {
      throw corruptDatabase(opts.dbFile, 'SQLite refused to open it');
    }
    throw new UserError(
      `The Temporal dev server exited during start-up (exit ${exitCode}). Its log ` +
        `(${opts.logFile}) ends with:\n${tail}`,
    );
  }

  return {
    address,
    namespace,
    uiUrl: opts.headless ? undefined : `http://${ip}:${uiPort}`,
    pid: child.pid ?? -1,
    async stop() {
      if (exitCode !== undefined) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exitedPromise;
      clearTimeout(timer);
    },
  };
}
