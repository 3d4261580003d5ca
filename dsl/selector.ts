// Pure (workflow-safe). Target selectors over an inventory: `all`, `group:web`, `host:web-1`, `label:zone=eu1`,
// a bare host or group name, comma-separated; `!term` excludes. Result order is inventory order. Also the
// shapes of what they select: inventory hosts, and the SSH login of one (the language defines it, the pool uses it).
import { CODES, type Code } from './problems';
import type { SecretDeclDoc } from './schema';
import { didYouMean } from './suggest';

export interface TargetHost {
  name: string;
  address: string;
  port: number;
  user?: string;
  zone?: string;
  labels: Record<string, string>;
  vars: Record<string, unknown>;
}

/** Inventory data after loading: hosts in file order, groups flattened (children resolved). */
export interface InventoryData {
  hosts: TargetHost[];
  groups: Record<string, string[]>;
  vars: Record<string, unknown>;
}

/** Where and how to log in to a host over SSH: paths and secret references only, never key material or passwords. */
export interface SshTarget {
  /** Inventory name, used in messages. */
  name: string;
  address: string;
  /** @default 22 */
  port?: number;
  user: string;
  /** Private key file; without one, the SSH agent (SSH_AUTH_SOCK) or a password secret is used. */
  identityFile?: string;
  /** known_hosts file the host key must be listed in. */
  knownHosts: string;
  /** 'accept-new' trusts an unknown host's key once and records it (a changed key is always refused). @default 'strict' */
  hostKeyPolicy?: 'strict' | 'accept-new';
  /** Password auth from a declared secret. */
  passwordSecret?: { name: string; decl: SecretDeclDoc };
  /** A login check (`ssh.login`): a connection of its own, closed after its one use, never one opened before. */
  loginCheck?: boolean;
  /** Reach this host through a bastion. */
  jump?: SshTarget;
}

type Term =
  | { kind: 'all'; exclude: boolean }
  | { kind: 'group' | 'host' | 'name'; name: string; exclude: boolean }
  | { kind: 'label'; key: string; value: string; exclude: boolean };

const NAME = '[A-Za-z0-9_.:@-]+';
const TERM = new RegExp(
  `^(!)?\\s*(?:(all|\\*)|group:(${NAME})|host:(${NAME})|label:([A-Za-z0-9_./-]+)=([^,]*)|(${NAME}))$`,
);

export function parseSelector(text: string): { ok: true; terms: Term[] } | { ok: false; message: string } {
  const parts = text
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p.length > 0);
  if (parts.length === 0) return { ok: false, message: 'empty target selector' };
  const terms: Term[] = [];
  for (const part of parts) {
    const m = TERM.exec(part);
    if (!m) {
      return {
        ok: false,
        message: `invalid selector term ${JSON.stringify(part)}: expected all, group:NAME, host:NAME, label:KEY=VALUE or a name, optionally prefixed with !`,
      };
    }
    const exclude = m[1] === '!';
    if (m[2]) terms.push({ kind: 'all', exclude });
    else if (m[3]) terms.push({ kind: 'group', name: m[3], exclude });
    else if (m[4]) terms.push({ kind: 'host', name: m[4], exclude });
    else if (m[5]) terms.push({ kind: 'label', key: m[5], value: (m[6] ?? '').trim(), exclude });
    else terms.push({ kind: 'name', name: m[7]!, exclude });
  }
  if (terms.every((t) => t.exclude)) terms.unshift({ kind: 'all', exclude: false });
  return { ok: true, terms };
}

export interface SelectorError {
  message: string;
  code: Code;
}

/** Hosts a selector picks, in inventory order; an unknown host or group is an error, as is an empty result. */
export function resolveTargets(inv: InventoryData, selector: string): { hosts: TargetHost[]; errors: SelectorError[] } {
  const parsed = parseSelector(selector);
  if (!parsed.ok) return { hosts: [], errors: [{ message: parsed.message, code: CODES.badSelector }] };
  const errors: SelectorError[] = [];
  const hostNames = inv.hosts.map((h) => h.name);
  const groupNames = Object.keys(inv.groups);
  const match = (term: Term): Set<string> => {
    switch (term.kind) {
      case 'all':
        return new Set(hostNames);
      case 'label':
        return new Set(inv.hosts.filter((h) => h.labels[term.key] === term.value).map((h) => h.name));
      case 'host':
        if (!hostNames.includes(term.name))
          errors.push({
            message: `unknown host "${term.name}"${didYouMean(term.name, hostNames)}`,
            code: CODES.unknownHost,
          });
        return new Set([term.name]);
      case 'group':
        if (!(term.name in inv.groups))
          errors.push({
            message: `unknown group "${term.name}"${didYouMean(term.name, groupNames)}`,
            code: CODES.unknownGroup,
          });
        return new Set(inv.groups[term.name] ?? []);
      case 'name':
        if (hostNames.includes(term.name)) return new Set([term.name]);
        if (term.name in inv.groups) return new Set(inv.groups[term.name]);
        errors.push({
          message: `"${term.name}" is neither a host nor a group${didYouMean(term.name, [...hostNames, ...groupNames])}`,
          code: CODES.unknownHost,
        });
        return new Set();
    }
  };
  const include = new Set<string>();
  const exclude = new Set<string>();
  for (const term of parsed.terms) for (const name of match(term)) (term.exclude ? exclude : include).add(name);
  const hosts = inv.hosts.filter((h) => include.has(h.name) && !exclude.has(h.name));
  if (errors.length === 0 && hosts.length === 0)
    errors.push({ message: `selector "${selector}" matches no hosts`, code: CODES.noTargets });
  return { hosts, errors };
}
