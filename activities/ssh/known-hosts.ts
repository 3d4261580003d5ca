// Node side. Strict host-key checking against an OpenSSH known_hosts file (plain and hashed host entries).
import crypto from 'node:crypto';
import fs from 'node:fs';

interface Entry { patterns: string[]; hashed?: { salt: Buffer; hash: Buffer }; keyType: string; key: Buffer }

/** The name OpenSSH looks up: `addr` on port 22, `[addr]:port` otherwise. */
export function knownHostsName(address: string, port: number): string {
  return port === 22 ? address : `[${address}]:${port}`;
}

/** SHA256 fingerprint in OpenSSH's format (`SHA256:base64-without-padding`). */
export function fingerprint(key: Buffer): string {
  return `SHA256:${crypto.createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

export function parseKnownHosts(text: string): Entry[] {
  const entries: Entry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith('@')) continue;
    const [hosts, keyType, keyB64] = line.split(/\s+/);
    if (!hosts || !keyType || !keyB64) continue;
    const key = Buffer.from(keyB64, 'base64');
    if (hosts.startsWith('|1|')) {
      const [, , salt, hash] = hosts.split('|');
      if (salt && hash) entries.push({ patterns: [], hashed: { salt: Buffer.from(salt, 'base64'), hash: Buffer.from(hash, 'base64') }, keyType, key });
    } else {
      entries.push({ patterns: hosts.split(','), keyType, key });
    }
  }
  return entries;
}

function matches(entry: Entry, name: string): boolean {
  if (entry.hashed) {
    const mac = crypto.createHmac('sha1', entry.hashed.salt).update(name).digest();
    return mac.equals(entry.hashed.hash);
  }
  return entry.patterns.includes(name);
}

export type HostKeyVerdict = { ok: true } | { ok: false; reason: 'unknown' | 'changed' };

/** Checks a presented host key (the SSH wire blob) for `address:port` against known_hosts entries. */
export function verifyHostKey(entries: Entry[], address: string, port: number, key: Buffer): HostKeyVerdict {
  const name = knownHostsName(address, port);
  const forHost = entries.filter((e) => matches(e, name));
  if (forHost.some((e) => e.key.equals(key))) return { ok: true };
  return { ok: false, reason: forHost.length > 0 ? 'changed' : 'unknown' };
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
