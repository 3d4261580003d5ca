// Unit: known_hosts parsing and host-key verification (plain and hashed entries, patterns, unknown, changed and
// revoked keys, CA lines that are not host keys).
import crypto from 'node:crypto';
import {
  fingerprint,
  hostKeyError,
  knownHostsName,
  parseKnownHosts,
  verifyHostKey,
} from '../../activities/ssh/known-hosts';

const keyA = Buffer.from('AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', 'base64');
const keyB = Buffer.from('AAAAC3NzaC1lZDI1NTE5AAAAIBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB', 'base64');

function hashed(name: string): string {
  const salt = crypto.randomBytes(20);
  return `|1|${salt.toString('base64')}|${crypto.createHmac('sha1', salt).update(name).digest('base64')}`;
}

test('names follow OpenSSH: bare address on port 22, [address]:port otherwise', () => {
  expect(knownHostsName('10.0.0.1', 22)).toBe('10.0.0.1');
  expect(knownHostsName('127.1.0.1', 2222)).toBe('[127.1.0.1]:2222');
});

test.each([
  ['plain entry, matching key', `[127.1.0.1]:2222 ssh-ed25519 ${keyA.toString('base64')}`, keyA, { ok: true }],
  [
    'plain entry among several names',
    `web1,[127.1.0.1]:2222 ssh-ed25519 ${keyA.toString('base64')}`,
    keyA,
    { ok: true },
  ],
  [
    'hashed entry, matching key',
    `${hashed('[127.1.0.1]:2222')} ssh-ed25519 ${keyA.toString('base64')}`,
    keyA,
    { ok: true },
  ],
  [
    'listed with another key',
    `[127.1.0.1]:2222 ssh-ed25519 ${keyA.toString('base64')}`,
    keyB,
    { ok: false, reason: 'changed' },
  ],
  [
    'hashed, listed with another key',
    `${hashed('[127.1.0.1]:2222')} ssh-ed25519 ${keyA.toString('base64')}`,
    keyB,
    { ok: false, reason: 'changed' },
  ],
  [
    'other port only',
    `[127.1.0.1]:2200 ssh-ed25519 ${keyA.toString('base64')}`,
    keyA,
    { ok: false, reason: 'unknown' },
  ],
  ['empty file', '', keyA, { ok: false, reason: 'unknown' }],
  [
    'comments are ignored',
    `# [127.1.0.1]:2222 ssh-ed25519 ${keyA.toString('base64')}`,
    keyA,
    { ok: false, reason: 'unknown' },
  ],
  ['wildcard pattern', `[127.1.0.*]:2222 ssh-ed25519 ${keyA.toString('base64')}`, keyA, { ok: true }],
  [
    'negated pattern excludes the host',
    `[127.1.0.*]:2222,![127.1.0.1]:2222 ssh-ed25519 ${keyA.toString('base64')}`,
    keyA,
    { ok: false, reason: 'unknown' },
  ],
  [
    '@revoked key',
    `@revoked [127.1.0.1]:2222 ssh-ed25519 ${keyA.toString('base64')}`,
    keyA,
    { ok: false, reason: 'revoked' },
  ],
  [
    '@revoked key that is also listed as a host key (either order)',
    `[127.1.0.1]:2222 ssh-ed25519 ${keyA.toString('base64')}\n` +
      `@revoked * ssh-ed25519 ${keyA.toString('base64')}\n[127.1.0.1]:2222 ssh-ed25519 ${keyA.toString('base64')}`,
    keyA,
    { ok: false, reason: 'revoked' },
  ],
  [
    'hashed @revoked entry',
    `@revoked ${hashed('[127.1.0.1]:2222')} ssh-ed25519 ${keyA.toString('base64')}\n[127.1.0.1]:2222 ssh-ed25519 ${keyA.toString('base64')}`,
    keyA,
    { ok: false, reason: 'revoked' },
  ],
  [
    '@revoked for another host does not apply',
    `@revoked [127.9.9.9]:2222 ssh-ed25519 ${keyA.toString('base64')}\n[127.1.0.1]:2222 ssh-ed25519 ${keyA.toString('base64')}`,
    keyA,
    { ok: true },
  ],
  [
    'another key revoked, this one listed',
    `@revoked * ssh-ed25519 ${keyB.toString('base64')}\n[127.1.0.1]:2222 ssh-ed25519 ${keyA.toString('base64')}`,
    keyA,
    { ok: true },
  ],
  [
    '@cert-authority line is not a host key',
    `@cert-authority [127.1.0.1]:2222 ssh-ed25519 ${keyA.toString('base64')}`,
    keyA,
    { ok: false, reason: 'unknown' },
  ],
  [
    '@cert-authority line does not make another key "changed"',
    `@cert-authority * ssh-ed25519 ${keyB.toString('base64')}`,
    keyA,
    { ok: false, reason: 'unknown' },
  ],
  [
    'unknown marker: the line is ignored',
    `@bogus [127.1.0.1]:2222 ssh-ed25519 ${keyA.toString('base64')}`,
    keyA,
    { ok: false, reason: 'unknown' },
  ],
])('%s', (_label, text, key, verdict) => {
  expect(verifyHostKey(parseKnownHosts(text), '127.1.0.1', 2222, key)).toEqual(verdict);
});

test('fingerprints use OpenSSH SHA256 format without padding', () => {
  const expected = crypto.createHash('sha256').update(keyA).digest('base64').replace(/=+$/, '');
  expect(fingerprint(keyA)).toBe(`SHA256:${expected}`);
});

test('a revoked key is refused with a HostKeyError naming host, fingerprint and file, and saying it is revoked', () => {
  const err = hostKeyError('revoked', 'host-1 (127.1.0.1:2222)', keyA, '/etc/runbook/known_hosts');
  expect(err).toMatchObject({
    name: 'HostKeyError',
    message:
      `Host key of host-1 (127.1.0.1:2222) is REVOKED: it presented ${fingerprint(keyA)}, which /etc/runbook/known_hosts marks @revoked. ` +
      'Refusing to connect; the host needs a new key, listed in that file once checked.',
  });
  expect(hostKeyError('changed', 'h (a:1)', keyB, 'f').message).toBe(
    `Host key of h (a:1) CHANGED: it presented ${fingerprint(keyB)}, which does not match f. ` +
      'Refusing to connect; if the change is expected, update that file.',
  );
});
