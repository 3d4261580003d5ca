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

describe('generated secrets', () => {
  const decl = { provider: 'file' as const, key: 'gen/new_password', generate: { length: 32 } };

  test('the first use in a run generates and stores it (0600); later and concurrent uses of the run get the same value', async () => {
    const values = await Promise.all(
      Array.from({ length: 8 }, () => secrets.resolve('new_password', decl, 'wf-1/run-1')),
    );
    expect(new Set(values).size).toBe(1);
    expect(values[0]).toMatch(/^[A-Za-z0-9]{32}$/);
    const file = path.join(dir, 'gen', 'new_password');
    expect(fs.readFileSync(file, 'utf8')).toBe(`${values[0]}\n`);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    // A retried step of the same run, even on another worker (a fresh provider), reads the run's value.
    const other = new Secrets({ env: {}, baseDir: dir });
    expect(await other.resolve('new_password', decl, 'wf-1/run-1')).toBe(values[0]);
    // Another run generates a new one (and the owner's copy is the latest); the first run's value does not change.
    const next = await secrets.resolve('new_password', decl, 'wf-1/run-2');
    expect(next).not.toBe(values[0]);
    expect(fs.readFileSync(file, 'utf8')).toBe(`${next}\n`);
    expect(await secrets.resolve('new_password', decl, 'wf-1/run-1')).toBe(values[0]);
    expect(redact(`x ${next} y`)).not.toContain(next);
    // Runs interleaving their first uses each keep their own value.
    const pairs = await Promise.all(
      ['a', 'b', 'c', 'a', 'b', 'c'].map((r) => secrets.resolve('new_password', decl, `wf-2/${r}`)),
    );
    expect(pairs.slice(0, 3)).toEqual(pairs.slice(3));
    expect(new Set(pairs).size).toBe(3);
  });

  test('outside a run, or outside the secrets directory, it is refused', async () => {
    await expect(secrets.resolve('new_password', decl)).rejects.toThrow(
      'secret "new_password" is generated by a run, and is used here outside of one',
    );
    const inside = `a generated secret's file must be inside the secrets directory ${fs.realpathSync(dir)}`;
    for (const key of ['/tmp/elsewhere', '../escape', 'gen/../../escape'])
      await expect(secrets.resolve('x', { ...decl, key }, 'wf/run')).rejects.toThrow(inside);
    const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'runbook-secrets-outside-'));
    fs.symlinkSync(outside, path.join(dir, 'linked'));
    await expect(secrets.resolve('x', { ...decl, key: 'linked/pw' }, 'wf/run')).rejects.toThrow(
      'is reached through a symbolic link; refusing to use it',
    );
    expect(fs.readdirSync(outside)).toEqual([]);
    fs.rmSync(outside, { recursive: true, force: true });
  });
});
