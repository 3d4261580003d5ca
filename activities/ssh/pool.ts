// Node side. One ssh2 connection per user@host:port (and jump host), reused across steps: TCP_NODELAY on the
// socket (48 ms -> 3 ms per command on loopback), strict host-key checking (trust-on-first-use only by explicit
// opt-in, recording the key), key, agent or password auth (password from a secret reference), jump hosts,
// keepalive, and an idle close. A connection counts as in use while a command runs on it and, for a jump host,
// while any connection tunnelled through it is open.
import fs from 'node:fs';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { Client, utils as sshUtils, type ConnectConfig } from 'ssh2';
import type { SshTarget } from '../../dsl/selector';
import type { Secrets } from '../secrets/providers';
import { HostKeyError, SshAuthError, SshConnectError } from './errors';
import { hostKeyError, knownHostsName, loadKnownHosts, verifyHostKey } from './known-hosts';

interface Pooled {
  client: Client;
  active: number;
  idleTimer?: NodeJS.Timeout;
}

export interface SshPoolOptions {
  /** Close a connection after this long without use. @default 60000 */
  idleMs?: number;
  /** @default 10000 */
  connectTimeoutMs?: number;
  /** Resolves password secrets at connect time. */
  secrets?: Secrets;
  /** Run steps through each connection's shell agent (agent.ts); false: a plain exec channel per step. @default true */
  shellAgent?: boolean;
  /** SSH agent socket for hosts with neither key nor password (the worker's SSH_AUTH_SOCK). @default none */
  agentSocket?: string;
}

function poolKey(t: SshTarget): string {
  return `${t.user}@${t.address}:${t.port ?? 22}${t.jump ? ` via ${poolKey(t.jump)}` : ''}`;
}

export class SshPool {
  private readonly conns = new Map<string, Promise<Pooled>>();
  private readonly idleMs: number;
  private readonly connectTimeoutMs: number;
  private readonly secrets?: Secrets;
  private readonly agentSocket?: string;
  /** Whether steps may go through a connection's shell agent (see SshPoolOptions.shellAgent). */
  readonly shellAgent: boolean;

  constructor(opts: SshPoolOptions = {}) {
    this.idleMs = opts.idleMs ?? 60_000;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
    this.secrets = opts.secrets;
    this.shellAgent = opts.shellAgent ?? true;
    this.agentSocket = opts.agentSocket;
  }

  /** Runs `fn` with a pooled connection to `target`, opening one if needed. */
  async use<T>(target: SshTarget, fn: (client: Client) => Promise<T>): Promise<T> {
    if (target.loginCheck) {
      // Proves the credentials work now: a pooled connection may have logged in with an older password.
      const own = await this.open(target, `${poolKey(target)} login check`);
      try {
        return await fn(own.client);
      } finally {
        own.client.end();
      }
    }
    const pooled = await this.acquire(target);
    try {
      return await fn(pooled.client);
    } finally {
      this.release(pooled);
    }
  }

  /** A pooled connection to `target`, marked in use until `release`. */
  private async acquire(target: SshTarget): Promise<Pooled> {
    const key = poolKey(target);
    let pending = this.conns.get(key);
    if (!pending) {
      pending = this.open(target, key);
      this.conns.set(key, pending);
      pending.catch(() => this.conns.delete(key));
    }
    const pooled = await pending;
    pooled.active += 1;
    clearTimeout(pooled.idleTimer);
    return pooled;
  }

  /** Ends one use; the last one starts the idle timer. */
  private release(pooled: Pooled): void {
    pooled.active -= 1;
    if (pooled.active === 0) {
      pooled.idleTimer = setTimeout(() => pooled.client.end(), this.idleMs);
      pooled.idleTimer.unref();
    }
  }

  /** Closes every connection. */
  async closeAll(): Promise<void> {
    const all = [...this.conns.values()];
    this.conns.clear();
    await Promise.all(
      all.map(async (p) => {
        const pooled = await p.catch(() => undefined);
        if (pooled) {
          clearTimeout(pooled.idleTimer);
          pooled.client.end();
        }
      }),
    );
  }

  /**
   * A TCP socket (TCP_NODELAY) to the target, or a channel forwarded through its jump host. The jump host's
   * connection stays in use (no idle close) for as long as the forwarded channel is open.
   */
  private async socketTo(target: SshTarget): Promise<Duplex> {
    const port = target.port ?? 22;
    if (target.jump) {
      const jump = target.jump;
      const bastion = await this.acquire(jump);
      return new Promise<Duplex>((resolve, reject) => {
        let released = false;
        const release = () => {
          if (!released) {
            released = true;
            this.release(bastion);
          }
        };
        try {
          bastion.client.forwardOut('127.0.0.1', 0, target.address, port, (err, stream) => {
            if (err) {
              release();
              return reject(
                new SshConnectError(
                  `Cannot reach ${target.name} (${target.address}:${port}) through jump host ${jump.name}: ${err.message}`,
                ),
              );
            }
            stream.once('close', release);
            resolve(stream);
          });
        } catch (err) {
          release();
          reject(
            new SshConnectError(
              `Cannot reach ${target.name} through jump host ${jump.name}: ${(err as Error).message}`,
            ),
          );
        }
      });
    }
    const sock = net.connect({ host: target.address, port });
    sock.setNoDelay(true);
    return sock;
  }

  private async credentials(target: SshTarget): Promise<Partial<ConnectConfig>> {
    if (target.passwordSecret) {
      if (!this.secrets) throw new SshAuthError(`${target.name}: password auth needs a secrets provider in the pool`);
      return { password: await this.secrets.resolve(target.passwordSecret.name, target.passwordSecret.decl) };
    }
    if (target.identityFile) {
      let privateKey: Buffer;
      try {
        privateKey = fs.readFileSync(target.identityFile);
      } catch (err) {
        throw new SshAuthError(loginFileProblem(target, 'key', err));
      }
      // A file that is not a key ssh2 can use (garbage, a public key, one with a passphrase) fails every attempt the
      // same way: say so now, naming the file, instead of retrying ssh2's bare "Cannot parse privateKey".
      const parsed = sshUtils.parseKey(privateKey);
      if (parsed instanceof Error) throw new SshAuthError(loginFileProblem(target, 'key', parsed));
      return { privateKey };
    }
    if (this.agentSocket) return { agent: this.agentSocket };
    throw new SshAuthError(
      `${target.name}: no credentials: set identityFile, a password secret, or run an SSH agent (SSH_AUTH_SOCK)`,
    );
  }

  private async open(target: SshTarget, key: string): Promise<Pooled> {
    const port = target.port ?? 22;
    const where = `${target.name} (${target.address}:${port})`;
    let knownHosts: ReturnType<typeof loadKnownHosts> = [];
    if (fs.existsSync(target.knownHosts) || target.hostKeyPolicy !== 'accept-new') {
      try {
        knownHosts = loadKnownHosts(target.knownHosts);
      } catch (err) {
        throw new HostKeyError(loginFileProblem(target, 'known_hosts', err));
      }
    }
    const creds = await this.credentials(target);
    const sock = await this.socketTo(target);
    let hostKeyProblem: HostKeyError | undefined;
    return new Promise<Pooled>((resolve, reject) => {
      const client = new Client();
      const pooled: Pooled = { client, active: 0 };
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        sock.destroy();
        reject(err);
      };
      client.once('ready', () => {
        settled = true;
        client.on('error', () => this.conns.delete(key));
        client.once('close', () => this.conns.delete(key));
        resolve(pooled);
      });
      client.once('error', (err: Error & { level?: string }) => {
        if (hostKeyProblem) return fail(hostKeyProblem);
        if (err.level === 'client-authentication') {
          return fail(
            new SshAuthError(
              `${target.user}@${where} refused the ${creds.password ? 'password' : creds.agent ? "agent's keys" : `key ${target.identityFile}`}: ` +
                'check the user name and that the public key is in its authorized_keys.',
            ),
          );
        }
        fail(new SshConnectError(`Cannot connect to ${where}: ${err.message}`));
      });
      client.once('close', () =>
        fail(hostKeyProblem ?? new SshConnectError(`Connection to ${where} closed during the handshake`)),
      );
      sock.once('error', (err) => fail(new SshConnectError(`Cannot connect to ${where}: ${err.message}`)));
      client.connect({
        sock,
        username: target.user,
        readyTimeout: this.connectTimeoutMs,
        keepaliveInterval: 15_000,
        keepaliveCountMax: 3,
        ...creds,
        hostVerifier: (hostKey: Buffer) => {
          const verdict = verifyHostKey(knownHosts, target.address, port, hostKey);
          if (verdict.ok) return true;
          if (verdict.reason === 'unknown' && target.hostKeyPolicy === 'accept-new') {
            recordHostKey(target.knownHosts, target.address, port, hostKey);
            return true;
          }
          hostKeyProblem = hostKeyError(verdict.reason, where, hostKey, target.knownHosts);
          return false;
        },
      });
    });
  }
}

/** Appends a host key to known_hosts (trust on first use, when explicitly enabled). */
function recordHostKey(file: string, address: string, port: number, key: Buffer): void {
  const typeLen = key.readUInt32BE(0);
  const type = key.subarray(4, 4 + typeLen).toString('latin1');
  fs.appendFileSync(file, `${knownHostsName(address, port)} ${type} ${key.toString('base64')}\n`, { mode: 0o600 });
}

/**
 * One paragraph for a key or known_hosts file the worker cannot read: which file, for which host, and the settings
 * that choose it (an operator meets this on a first run, and a raw `ENOENT ... stat` says none of that). Final: no
 * retry brings the file.
 */
export function loginFileProblem(target: SshTarget, which: 'key' | 'known_hosts', err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  const file = which === 'key' ? target.identityFile : target.knownHosts;
  const why =
    code === 'ENOENT'
      ? 'does not exist'
      : code === 'EACCES'
        ? 'cannot be read by the worker (permission denied)'
        : code === 'EISDIR'
          ? 'is a directory'
          : code === undefined && which === 'key'
            ? `is not a private key the worker can use (${(err as Error).message}; a key with a passphrase needs an SSH agent)`
            : `cannot be read (${(err as Error).message})`;
  const login = `${target.user}@${target.address}${target.port ? `:${target.port}` : ''}`;
  return which === 'key'
    ? `${target.name} (${login}): the SSH key file ${file} ${why}. The worker logs in with the key the inventory names ` +
        "(`identityFile` or `ansible_ssh_private_key_file` in the host's or the inventory's vars), else RUNBOOK_SSH_KEY " +
        '(default ~/.ssh/id_ed25519): point one of them at the private key for this login, or give the host a password ' +
        'secret, or run an SSH agent (SSH_AUTH_SOCK).'
    : `${target.name} (${login}): the known_hosts file ${file} ${why}, so the host's key cannot be checked and the worker ` +
        "does not connect. It uses the file the inventory names (`knownHosts` in the host's or the inventory's vars), " +
        "else RUNBOOK_KNOWN_HOSTS (default ~/.ssh/known_hosts): point one of them at a file holding the hosts' keys " +
        `(for example \`ssh-keyscan ${target.port ? `-p ${target.port} ` : ''}${target.address} >> FILE\`, after checking the fingerprint).`;
}
