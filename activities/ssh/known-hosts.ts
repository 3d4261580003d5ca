// Node side. Strict host-key checking against an OpenSSH known_hosts file: plain and hashed host entries, host
// patterns (`*`, `?`, negation with `!`), and markers. A key on a `@revoked` line for the host is refused even
// where another line lists it; `@cert-authority` lines name a CA for host certificates, not a host key, so they
// never vouch for a presented key (host certificates are not supported).
import crypto from 'node:crypto';
import fs from 'node:fs';
import { HostKeyError } from './errors';

interface Entry {
  marker?: 'revoked' | 'cert-authority';
  patterns: string[];
  hashed?: { salt: Buffer; hash: Buffer };
  keyType: string;
  key: Buffer;
}

/** The name OpenSSH looks up: `addr` on port 22, `[addr]:port` otherwise. */
export function knownHostsName(address: string, port: number): string {
  return port === 22 ? address : `[${address}]:${port}`;
}

/** SHA256 fingerprint in OpenSSH's format (`SHA256:base64-without-padding`). */
export function fingerprint(key: Buffer): string {
  return `SHA256:${crypto.createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

const MARKERS: Record<string, Entry['marker']> = { '@revoked': 'revoked', '@cert-authority': 'cert-authority' };

export function parseKnownHosts(text: string): Entry[] {
  const entries: Entry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    let marker: Entry['marker'];
    if (fields[0]!.startsWith('@')) {
      marker = MARKERS[fields.shift()!];
      if (!marker) continue; // a marker OpenSSH does not know either: the line is ignored
    }
    const [hosts, keyType, keyB64] = fields;
    if (!hosts || !keyType || !keyB64) continue;
    const key = Buffer.from(keyB64, 'base64');
    if (hosts.startsWith('|1|')) {
      const [, , salt, hash] = hosts.split('|');
      if (salt && hash)
        entries.push({
          marker,
          patterns: [],
          hashed: { salt: Buffer.from(salt, 'base64'), hash: Buffer.from(hash, 'base64') },
          keyType,
          key,
        });
    } else {
      entries.push({ marker, patterns: hosts.split(','), keyType, key });
    }
  }
  return entries;
}

/** One OpenSSH host pattern (`*` any run, `?` one character), case-insensitive, against the whole name. */
function patternMatches(pattern: string, name: string): boolean {
  const re = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${re}$`, 'i').test(name);
}

function matches(entry: Entry, name: string): boolean {
  if (entry.hashed) {
    const mac = crypto.createHmac('sha1', entry.hashed.salt).update(name).digest();
    return mac.equals(entry.hashed.hash);
  }
  // A negated pattern that matches excludes the host whatever else matches.
  let positive = false;
  for (const p of entry.patterns) {
    if (p.startsWith('!')) {
      if (patternMatches(p.slice(1), name)) return false;
    } else if (patternMatches(p, name)) {
      positive = true;
    }
  }
  return positive;
}

export type HostKeyVerdict = { ok: true } | { ok: false; reason: 'unknown' | 'changed' | 'revoked' };

/** Checks a presented host key (the SSH wire blob) for `address:port` against known_hosts entries. */
export function verifyHostKey(entries: Entry[], address: string, port: number, key: Buffer): HostKeyVerdict {
  const name = knownHostsName(address, port);
  const forHost = entries.filter((e) => matches(e, name));
  if (forHost.some((e) => e.marker === 'revoked' && e.key.equals(key))) return { ok: false, reason: 'revoked' };
  const plain = forHost.filter((e) => e.marker === undefined);
  if (plain.some((e) => e.key.equals(key))) return { ok: true };
  return { ok: false, reason: plain.length > 0 ? 'changed' : 'unknown' };
}

/** The error for a refused host key: names the host, the presented key's fingerprint and the known_hosts file. */
export function hostKeyError(
  reason: 'unknown' | 'changed' | 'revoked',
  where: string,
  key: Buffer,
  file: string,
): HostKeyError {
  const fp = fingerprint(key);
  switch (reason) {
    case 'revoked':
      return new HostKeyError(
        `Host key of ${where} is REVOKED: it presented ${fp}, which ${file} marks @revoked. ` +
          'Refusing to connect; the host needs a new key, listed in that file once checked.',
      );
    case 'changed':
      return new HostKeyError(
        `Host key of ${where} CHANGED: it presented ${fp}, which does not match ${file}. ` +
          'Refusing to connect; if the change is expected, update that file.',
      );
    case 'unknown':
      return new HostKeyError(
        `Host key of ${where} is unknown: ${fp} is not in ${file}. Refusing to connect; ` +
          "add the host's key to that file (ssh-keyscan) after checking it.",
      );
  }
}

const cache = new Map<string, { mtimeMs: number; entries: Entry[] }>();

/** Parsed entries of a known_hosts file, re-read when the file changes. */
export function loadKnownHosts(file: string): Entry[] {
  const { mtimeMs } = fs.statSync(file);
  const hit = cache.get(file);
  if (hit && hit.mtimeMs === mtimeMs) return hit.entries;
  const entries = parseKnownHosts(fs.readFileSync(file, 'utf8'));
  cache.set(file, { mtimeMs, entries });
  return entries;
}
