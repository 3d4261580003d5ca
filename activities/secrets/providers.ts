// Node side. Secret providers: env (a variable), file (refuses a file others can read; writable, for rotation)
// and exec (a command prints the secret, e.g. a vault CLI). Every resolved value is registered for redaction.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { SecretDeclDoc } from '../../dsl/schema';
import { SecretError } from './errors';
import { redact, rememberSecret } from '../../common/redact';

export type SecretDeclaration = SecretDeclDoc;

export interface SecretsOptions {
  /** Environment for the env provider and exec commands: the worker's own (given by worker/), or a test's. */
  env: NodeJS.ProcessEnv;
  /** Base directory for relative file paths. @default process.cwd() */
  baseDir?: string;
  /** Time limit of an exec provider command. @default 30000 */
  execTimeoutMs?: number;
}

function readFileSecret(name: string, file: string): string {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch {
    throw new SecretError(`secret "${name}": file ${file} does not exist or cannot be read`);
  }
  if ((stat.mode & 0o077) !== 0) {
    throw new SecretError(
      `secret "${name}": file ${file} is readable or writable by group or others (mode ` +
        `${(stat.mode & 0o777).toString(8)}); refusing to use it. Run: chmod 600 ${file}`,
    );
  }
  return fs.readFileSync(file, 'utf8').replace(/\r?\n$/, '');
}

function runExec(name: string, command: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('/bin/sh', ['-c', command], { env, timeout: timeoutMs, maxBuffer: 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        const why = (err as { killed?: boolean }).killed
          ? `did not finish within ${timeoutMs} ms`
          : `failed (exit ${(err as { code?: unknown }).code})`;
        reject(
          new SecretError(`secret "${name}": command \`${command}\` ${why}: ${redact(stderr.trim()).slice(0, 300)}`),
        );
      } else {
        resolve(stdout.replace(/\r?\n$/, ''));
      }
    });
  });
}

export class Secrets {
  private readonly env: NodeJS.ProcessEnv;
  private readonly baseDir: string;
  private readonly execTimeoutMs: number;

  constructor(opts: SecretsOptions) {
    this.env = opts.env;
    this.baseDir = opts.baseDir ?? process.cwd();
    this.execTimeoutMs = opts.execTimeoutMs ?? 30_000;
  }

  /** Resolves one declared secret at the last moment. The value is registered for redaction. */
  async resolve(name: string, decl: SecretDeclaration): Promise<string> {
    let value: string;
    switch (decl.provider) {
      case 'env': {
        const v = this.env[decl.key];
        if (v === undefined || v === '')
          throw new SecretError(`secret "${name}": environment variable ${decl.key} is not set on the worker`);
        value = v;
        break;
      }
      case 'file':
        value = readFileSecret(name, path.resolve(this.baseDir, decl.key));
        break;
      case 'exec':
        value = await runExec(name, decl.key, this.env, this.execTimeoutMs);
        break;
      default:
        throw new SecretError(`secret "${name}": unknown provider ${String(decl.provider)}`);
    }
    if (value === '') throw new SecretError(`secret "${name}": the ${decl.provider} provider returned an empty value`);
    rememberSecret(value);
    return value;
  }

  /** Writes a new value for a file secret (rotation): atomically, mode 0600. Other providers are read-only. */
  async write(name: string, decl: SecretDeclaration, value: string): Promise<void> {
    if (decl.provider !== 'file')
      throw new SecretError(
        `secret "${name}": the ${decl.provider} provider is read-only; only file secrets can be rotated here`,
      );
    rememberSecret(value);
    const file = path.resolve(this.baseDir, decl.key);
    const tmp = `${file}.${process.pid}.tmp`;
    await fs.promises.writeFile(tmp, `${value}\n`, { mode: 0o600 });
    await fs.promises.rename(tmp, file);
  }
}
