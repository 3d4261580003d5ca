// Node side. Runs one command on a pooled connection: output captured up to a cap (the tail is kept, the
// sha256 covers everything), stdin, and a timeout that signals the remote command. A connection that closes or
// fails under a running command rejects it at once with SshConnectionLost (retryable): a channel without an exit
// status is no result.
import crypto from 'node:crypto';
import type { Client } from 'ssh2';
import { closeAgent } from './agent';
import { SshConnectionLost } from './errors';

export interface ExecOptions {
  /** Kill the command after this long. @default 600000 */
  timeoutMs?: number;
  /** Keep at most this many bytes of each stream (the tail). @default 1048576 */
  maxOutputBytes?: number;
  /** Bytes written to the command's stdin, which is then closed. */
  stdin?: Buffer;
}

export interface ExecResult {
  exitCode: number | null;
  /** Set when the remote command died of a signal. */
  signal: string | null;
  stdout: string;
  stderr: string;
  /** True when a stream exceeded the cap and only its tail is kept. */
  truncated: boolean;
  /** sha256 of the full stdout. */
  stdoutSha256: string;
  durationMs: number;
}

class Capture {
  private chunks: Buffer[] = [];
  private size = 0;
  truncated = false;
  private readonly hash = crypto.createHash('sha256');
  constructor(private readonly cap: number) {}
  push(chunk: Buffer): void {
    this.hash.update(chunk);
    this.chunks.push(chunk);
    this.size += chunk.length;
    if (this.size > this.cap) {
      const all = Buffer.concat(this.chunks);
      this.chunks = [all.subarray(all.length - this.cap)];
      this.size = this.cap;
      this.truncated = true;
    }
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
  digest(): string {
    return this.hash.digest('hex');
  }
}

/** Callbacks to run when a connection closes or fails; one pair of listeners per client however many commands run. */
const lossWatchers = new WeakMap<Client, Set<(why: string) => void>>();

function onConnectionLoss(client: Client, fn: (why: string) => void): () => void {
  let watchers = lossWatchers.get(client);
  if (!watchers) {
    const set = new Set<(why: string) => void>();
    const fire = (why: string) => {
      for (const w of [...set]) w(why);
    };
    client.on('close', () => fire('connection closed'));
    client.on('error', (e: Error) => fire(e.message));
    lossWatchers.set(client, set);
    watchers = set;
  }
  watchers.add(fn);
  return () => watchers.delete(fn);
}

export function exec(client: Client, command: string, opts: ExecOptions = {}, retried = false): Promise<ExecResult> {
  const started = Date.now();
  const cap = opts.maxOutputBytes ?? 1024 * 1024;
  const out = new Capture(cap);
  const err = new Capture(cap);
  return new Promise<ExecResult>((resolve, reject) => {
    let exitCode: number | null = null;
    let exitSignal: string | null = null;
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    const result = (): ExecResult => ({
      exitCode,
      signal: exitSignal,
      stdout: out.text(),
      stderr: err.text(),
      truncated: out.truncated || err.truncated,
      stdoutSha256: out.digest(),
      durationMs: Date.now() - started,
    });
    const settle = (how: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stopWatching();
      how();
    };
    // The connection went away under the command: what arrived is a result only if its exit status did.
    const stopWatching = onConnectionLoss(client, (why) =>
      settle(() =>
        exitCode !== null || exitSignal !== null
          ? resolve(result())
          : reject(new SshConnectionLost(`SSH connection lost while a command ran: ${why}`)),
      ),
    );
    try {
      client.exec(command, (e, channel) => {
        if (settled) return;
        // A refused channel while the shell agent holds a session (sshd's MaxSessions): free it and try again.
        if (e && !retried && closeAgent(client)) return settle(() => resolve(exec(client, command, opts, true)));
        if (e) return settle(() => reject(e));
        const kill = () => {
          channel.signal('KILL');
          channel.close();
        };
        timer = setTimeout(kill, opts.timeoutMs ?? 600_000);
        channel.on('data', (chunk: Buffer) => out.push(chunk));
        channel.stderr.on('data', (chunk: Buffer) => err.push(chunk));
        channel.end(opts.stdin);
        channel.on('exit', (code: number | null, signalName?: string) => {
          exitCode = code;
          exitSignal = signalName ?? null;
        });
        channel.on('close', () => settle(() => resolve(result())));
      });
    } catch (e) {
      // ssh2 throws at once when the connection is already gone ("Not connected").
      settle(() =>
        reject(new SshConnectionLost(`SSH connection lost before a command could start: ${(e as Error).message}`)),
      );
    }
  });
}
