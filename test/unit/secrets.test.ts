// Unit: secret providers and redaction.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Secrets } from '../../activities/secrets/providers';
import { createLogger } from '../../common/logger';
import { redact, redactDeep } from '../../common/redact';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'runbook-secrets-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const secrets = new Secrets({ env: { DB_PW: 'env-value-1', PATH: process.env.PATH }, baseDir: dir });

test('env provider, and a clear error for an unset variable', async () => {
  expect(await secrets.resolve('db', { provider: 'env', key: 'DB_PW' })).toBe('env-value-1');
  await expect(secrets.resolve('db', { provider: 'env', key: 'NOPE' })).rejects.toThrow(
    'secret "db": environment variable NOPE is not set on the worker',
  );
});

test('file provider refuses a file others can read, and rotates atomically with mode 0600', async () => {
  const file = path.join(dir, 'pw');
  fs.writeFileSync(file, 'file-value-1\n', { mode: 0o644 });
  fs.chmodSync(file, 0o644);
  await expect(secrets.resolve('pw', { provider: 'file', key: 'pw' })).rejects.toThrow(
    `secret "pw": file ${file} is readable or writable by group or others (mode 644); refusing to use it. Run: chmod 600 ${file}`,
  );
  fs.chmodSync(file, 0o600);
  expect(await secrets.resolve('pw', { provider: 'file', key: 'pw' })).toBe('file-value-1');
  await secrets.write('pw', { provider: 'file', key: 'pw' }, 'file-value-2');
  expect(fs.statSync(file).mode & 0o777).toBe(0o600);
  expect(await secrets.resolve('pw', { provider: 'file', key: 'pw' })).toBe('file-value-2');
  await expect(secrets.write('db', { provider: 'env', key: 'DB_PW' }, 'x')).rejects.toThrow(
    'secret "db": the env provider is read-only; only file secrets can be rotated here',
  );
});

test('exec provider prints the secret; a failing command is an error without the value', async () => {
  expect(await secrets.resolve('vault', { provider: 'exec', key: 'printf "exec-value-1\\n"' })).toBe('exec-value-1');
  await expect(secrets.resolve('vault', { provider: 'exec', key: 'echo exec-value-1 >&2; exit 3' })).rejects.toThrow(
    'secret "vault": command `echo exec-value-1 >&2; exit 3` failed (exit 3): ***',
  );
});

test('resolved values are redacted everywhere, longest first', () => {
  expect(redact('a env-value-1 b file-value-2 c')).toBe('a *** b *** c');
  expect(redactDeep({ list: ['x exec-value-1'], n: 1 })).toEqual({ list: ['x ***'], n: 1 });
});

describe('the logger', () => {
  test('the engine configuration logged whole keeps its environment and history keys out of the log', () => {
    const lines: string[] = [];
    const logger = createLogger('t', 'info', { write: (line: string) => lines.push(line) });
    const config = {
      runbookDir: '/srv/runbooks',
      secretsEnv: { DB_PASSWORD: 'hunter2-env-value' },
      codecKeys: [{ id: 'k1', key: 'c2VjcmV0LWtleS1ieXRlcw==' }],
    };
    logger.info({ config }, 'config');
    logger.info(config, 'flat');
    const out = lines.join('');
    expect(out).toContain('/srv/runbooks');
    expect(out).not.toContain('hunter2-env-value');
    expect(out).not.toContain('c2VjcmV0LWtleS1ieXRlcw==');
    expect(lines).toHaveLength(2);
  });
});
