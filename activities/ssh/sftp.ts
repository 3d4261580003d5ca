// Node side. File transfer over SFTP on the pooled connection, verified end to end by sha256: upload to a
// temporary name, compare checksums on the host, then set the mode and rename into place (atomic). A file
// already in place with the same content is left alone, so a retried upload changes nothing.
import { failureClass, FAILURES } from '../../common/failure-types';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { quote } from 'shell-quote';
import type { Client, SFTPWrapper } from 'ssh2';
import { exec } from './exec';
import type { SshTarget } from '../../dsl/selector';
import type { SshPool } from './pool';

/** The transferred file's checksum did not match on arrival. Retryable. */
export class TransferChecksumError extends failureClass(FAILURES.transferChecksum) {}

function sftp(client: Client): Promise<SFTPWrapper> {
  return new Promise((resolve, reject) => client.sftp((err, s) => (err ? reject(err) : resolve(s))));
}

async function remoteSha(client: Client, file: string): Promise<string | undefined> {
  const r = await exec(client, `sha256sum -- ${quote([file])} 2>/dev/null | cut -c1-64`);
  return r.stdout.trim() || undefined;
}

function localSha(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = crypto.createHash('sha256');
    fs.createReadStream(file)
      .on('error', reject)
      .on('data', (c) => h.update(c))
      .on('end', () => resolve(h.digest('hex')));
  });
}

/**
 * One SFTP transfer (`op` puts or gets) into a temporary name beside `dest`, returned: the caller moves it into
 * place only once its checksum is right.
 */
async function transferToTemp(
  client: Client,
  dest: string,
  op: (s: SFTPWrapper, tmp: string, done: (err?: Error | null) => void) => void,
): Promise<string> {
  const tmp = `${dest}.runbook-${crypto.randomBytes(4).toString('hex')}`;
  const s = await sftp(client);
  try {
    await new Promise<void>((resolve, reject) => op(s, tmp, (err) => (err ? reject(err) : resolve())));
  } finally {
    s.end();
  }
  return tmp;
}

export interface TransferResult {
  sha256: string;
  bytes: number;
  changed: boolean;
}

export async function upload(
  pool: SshPool,
  target: SshTarget,
  src: string,
  dest: string,
  mode = '0644',
): Promise<TransferResult> {
  const sha = await localSha(src);
  const bytes = fs.statSync(src).size;
  return pool.use(target, async (client) => {
    if ((await remoteSha(client, dest)) === sha) return { sha256: sha, bytes, changed: false };
    const tmp = await transferToTemp(client, dest, (s, to, done) => s.fastPut(src, to, done));
    const arrived = await remoteSha(client, tmp);
    if (arrived !== sha) {
      await exec(client, `rm -f -- ${quote([tmp])}`);
      throw new TransferChecksumError(
        `upload of ${path.basename(src)} to ${target.name}:${dest} arrived with sha256 ${arrived ?? 'none'}, expected ${sha}`,
      );
    }
    const r = await exec(client, `chmod ${quote([mode])} ${quote([tmp])} && mv -f -- ${quote([tmp])} ${quote([dest])}`);
    if (r.exitCode !== 0) throw new Error(`upload to ${target.name}:${dest}: ${r.stderr.trim()}`);
    return { sha256: sha, bytes, changed: true };
  });
}

export async function download(pool: SshPool, target: SshTarget, src: string, dest: string): Promise<TransferResult> {
  return pool.use(target, async (client) => {
    const expected = await remoteSha(client, src);
    if (!expected) throw new Error(`download from ${target.name}:${src}: no such file or not readable`);
    const tmp = await transferToTemp(client, dest, (s, to, done) => s.fastGet(src, to, done));
    const got = await localSha(tmp);
    if (got !== expected) {
      fs.rmSync(tmp, { force: true });
      throw new TransferChecksumError(
        `download of ${target.name}:${src} arrived with sha256 ${got}, expected ${expected}`,
      );
    }
    fs.renameSync(tmp, dest);
    return { sha256: got, bytes: fs.statSync(dest).size, changed: true };
  });
}
