// Unit: known_hosts parsing and host-key verification (plain and hashed entries, unknown and changed keys).
import crypto from 'node:crypto';
import { fingerprint, knownHostsName, parseKnownHosts, verifyHostKey } from '../../activities/ssh/known-hosts';

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
  ['plain entry among several names', `web1,[127.1.0.1]:2222 ssh-ed25519 ${keyA.toString('base64')}`, keyA, { ok: true }],
  ['hashed entry, matching key', `${hashed('[127.1.0.1]:2222')} ssh-ed25519 ${keyA.toString('base64')}`, keyA, { ok: true }],
  ['listed with another key', `[127.1.0.1]:2222 ssh-ed25519 ${keyA.toString('base64')}`, keyB, { ok: false, reason: 'changed' }],
  ['hashed, listed with another key', `${hashed('[127.1.0.1]:2222')} ssh-ed25519 ${keyA.toString('base64')}`, keyB, { ok: false, reason: 'changed' }],
  ['other port only', `[127.1.0.1]:2200 ssh-ed25519 ${keyA.toString('base64')}`, keyA, { ok: false, reason: 'unknown' }],
  ['empty file', '', keyA, { ok: false, reason: 'unknown' }],
  ['comments and markers are ignored', `# c\n@revoked [127.1.0.1]:2222 ssh-ed25519 ${keyA.toString('base64')}`, keyA, { ok: false, reason: 'unknown' }],
])('%s', (_label, text, key, verdict) => {
  expect(verifyHostKey(parseKnownHosts(text), '127.1.0.1', 2222, key)).toEqual(verdict);
});

test('fingerprints use OpenSSH SHA256 format without padding', () => {
  const expected = crypto.createHash('sha256').update(keyA).digest('base64').replace(/=+$/, '');
  expect(fingerprint(keyA)).toBe(`SHA256:${expected}`);
});
