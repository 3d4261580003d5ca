// Node side (reads files). Inventories: ours (YAML: hosts, groups, vars) and existing Ansible inventories (INI
// and YAML: groups, children, ansible_host, ansible_port, ansible_user), loaded into one shape with located
// problems. Also turns an inventory host into an SSH login.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Type } from '@sinclair/typebox';
import { parse as shellParse } from 'shell-quote';
import { UserError } from '../common/errors';
import { CODES, formatProblem, sortProblems, type Problem } from './problems';
import type { InventoryData, SshTarget, TargetHost } from './selector';
import { didYouMean } from './suggest';
import { validateAgainstSchema } from './validate';
import { parseYamlSource, tooLargeProblem, type YamlLimits, type YamlSource } from './yaml-source';

const HOST_NAME = '^[A-Za-z0-9_.:@-]+$';

/** Inventories may be larger than runbooks (tens of thousands of hosts), but not unbounded. */
export const INVENTORY_LIMITS = { maxBytes: 16 * 1024 * 1024, what: 'an inventory' } as const satisfies YamlLimits;
/** Ansible groups inside groups (`children`), at most. */
export const MAX_GROUP_DEPTH = 100;

const ConnectionVars = {
  identityFile: Type.Optional(Type.String({ description: 'Private key file (relative to the inventory).' })),
  knownHosts: Type.Optional(Type.String({ description: 'known_hosts file host keys are checked against.' })),
  user: Type.Optional(Type.String({ description: 'Login user.' })),
  port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'SSH port.' })),
};

/** Our inventory format. */
export const InventorySchema = Type.Object(
  {
    kind: Type.Optional(Type.Literal('Inventory')),
    vars: Type.Optional(
      Type.Object(ConnectionVars, { additionalProperties: true, description: 'Defaults for every host.' }),
    ),
    hosts: Type.Record(
      Type.String({ pattern: HOST_NAME }),
      Type.Object(
        {
          address: Type.String({ minLength: 1, description: 'IP address or DNS name.' }),
          port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
          user: Type.Optional(Type.String()),
          zone: Type.Optional(Type.String({ description: 'Network zone: task queue of the worker that reaches it.' })),
          labels: Type.Optional(Type.Record(Type.String(), Type.String())),
          vars: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
        },
        { additionalProperties: false },
      ),
      { additionalProperties: false },
    ),
    groups: Type.Optional(
      Type.Record(Type.String({ pattern: HOST_NAME }), Type.Array(Type.String()), { additionalProperties: false }),
    ),
  },
  { additionalProperties: false },
);

export interface Inventory extends InventoryData {
  file: string;
  format: 'runbook' | 'ansible-ini' | 'ansible-yaml';
}

export interface LoadedInventory {
  inventory?: Inventory;
  problems: Problem[];
}

function located(file: string, line: number, message: string, code: Problem['code'], col = 1): Problem {
  return { file, line, col, path: '', message, code, severity: 'error' };
}

function fromOurs(src: YamlSource, problems: Problem[]): InventoryData {
  const doc = src.data as {
    vars?: Record<string, unknown>;
    hosts: Record<string, Record<string, unknown>>;
    groups?: Record<string, string[]>;
  };
  const hosts: TargetHost[] = Object.entries(doc.hosts).map(([name, h]) => ({
    name,
    address: String(h.address),
    port: (h.port as number | undefined) ?? (doc.vars?.port as number | undefined) ?? 22,
    user: (h.user as string | undefined) ?? (doc.vars?.user as string | undefined),
    zone: h.zone as string | undefined,
    labels: (h.labels as Record<string, string> | undefined) ?? {},
    vars: (h.vars as Record<string, unknown> | undefined) ?? {},
  }));
  const names = hosts.map((h) => h.name);
  const known = new Set(names);
  const groups: Record<string, string[]> = { all: names };
  for (const [g, members] of Object.entries(doc.groups ?? {})) {
    members.forEach((m, i) => {
      if (!known.has(m))
        problems.push(
          src.problem(
            ['groups', g, i],
            `group "${g}" lists unknown host "${m}"${didYouMean(m, names)}`,
            CODES.unknownHost,
          ),
        );
    });
    groups[g] = members.filter((m) => known.has(m));
  }
  return { hosts, groups, vars: doc.vars ?? {} };
}

interface AnsibleHost {
  name: string;
  vars: Record<string, unknown>;
  line: number;
}

/** Builds hosts and flattened groups from Ansible's group tree; host vars beat group vars beat `all` vars. */
function fromAnsible(
  file: string,
  hostOrder: AnsibleHost[],
  groupHosts: Map<string, string[]>,
  children: Map<string, string[]>,
  groupVars: Map<string, Record<string, unknown>>,
  problems: Problem[],
  childLines = new Map<string, number>(),
): InventoryData {
  const flat = new Map<string, Set<string>>();
  const expand = (g: string, stack: string[]): Set<string> => {
    const done = flat.get(g);
    if (done) return done;
    if (stack.includes(g)) {
      problems.push(
        located(
          file,
          1,
          `group "${g}" contains itself through children: ${[...stack, g].join(' -> ')}`,
          CODES.inventoryShape,
        ),
      );
      return new Set();
    }
    if (stack.length >= MAX_GROUP_DEPTH) {
      problems.push(
        located(
          file,
          childLines.get(`${stack.at(-1)}/${g}`) ?? 1,
          `groups nest deeper than ${MAX_GROUP_DEPTH} levels through children (${stack[0]} -> ... -> ${g})`,
          CODES.inventoryShape,
        ),
      );
      return new Set();
    }
    const set = new Set(groupHosts.get(g) ?? []);
    for (const c of children.get(g) ?? []) for (const h of expand(c, [...stack, g])) set.add(h);
    flat.set(g, set);
    return set;
  };
  const allGroups = new Set([...groupHosts.keys(), ...children.keys(), ...groupVars.keys()]);
  for (const [g, kids] of children) {
    for (const k of kids) {
      if (!allGroups.has(k))
        problems.push(
          located(
            file,
            childLines.get(`${g}/${k}`) ?? 1,
            `group "${g}" has unknown child group "${k}"${didYouMean(k, [...allGroups])}`,
            CODES.unknownGroup,
          ),
        );
    }
  }
  const groups: Record<string, string[]> = {};
  const order = hostOrder.map((h) => h.name);
  for (const g of allGroups) groups[g] = order.filter((h) => expand(g, []).has(h));
  groups.all = order;
  const hosts = hostOrder.map((h): TargetHost => {
    const vars: Record<string, unknown> = { ...(groupVars.get('all') ?? {}) };
    for (const g of allGroups)
      if (g !== 'all' && expand(g, []).has(h.name)) Object.assign(vars, groupVars.get(g) ?? {});
    Object.assign(vars, h.vars);
    const port = vars.ansible_port ?? vars.ansible_ssh_port;
    if (port !== undefined && !/^\d+$/.test(String(port)))
      problems.push(
        located(
          file,
          h.line,
          `host "${h.name}": ansible_port must be a number, got ${JSON.stringify(port)}`,
          CODES.inventoryShape,
        ),
      );
    return {
      name: h.name,
      address: String(vars.ansible_host ?? vars.ansible_ssh_host ?? h.name),
      port: port === undefined ? 22 : Number(port),
      user: (vars.ansible_user ?? vars.ansible_ssh_user) as string | undefined,
      zone: vars.zone as string | undefined,
      labels: {},
      vars,
    };
  });
  return { hosts, groups, vars: groupVars.get('all') ?? {} };
}

/** Ansible INI: `[group]` host lines with key=value vars, `[group:children]`, `[group:vars]`. */
export function parseAnsibleIni(file: string, text: string, problems: Problem[]): InventoryData {
  const hostOrder: AnsibleHost[] = [];
  const byName = new Map<string, AnsibleHost>();
  const groupHosts = new Map<string, string[]>();
  const children = new Map<string, string[]>();
  const groupVars = new Map<string, Record<string, unknown>>();
  const childLines = new Map<string, number>();
  /** group NUL host, for each host a group lists (a list lookup per line would be quadratic). */
  const listed = new Set<string>();
  let section = { group: 'ungrouped', kind: 'hosts' as 'hosts' | 'children' | 'vars' };
  text.split('\n').forEach((raw, idx) => {
    const line = raw.replace(/\s[#;].*$/, '').trim();
    const lineNo = idx + 1;
    if (!line || line.startsWith('#') || line.startsWith(';')) return;
    const header = /^\[([^\]:]+)(?::(children|vars))?\]$/.exec(line);
    if (header) {
      section = { group: header[1]!, kind: (header[2] as 'children' | 'vars' | undefined) ?? 'hosts' };
      if (section.kind === 'hosts' && !groupHosts.has(section.group)) groupHosts.set(section.group, []);
      return;
    }
    if (line.startsWith('[')) {
      problems.push(
        located(
          file,
          lineNo,
          `malformed section header ${JSON.stringify(line)}: expected [group], [group:children] or [group:vars]`,
          CODES.inventoryShape,
        ),
      );
      return;
    }
    if (section.kind === 'children') {
      childLines.set(`${section.group}/${line}`, lineNo);
      children.set(section.group, [...(children.get(section.group) ?? []), line]);
      return;
    }
    const words = shellParse(line).filter((w): w is string => typeof w === 'string');
    if (section.kind === 'vars') {
      const m = /^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
      if (!m) {
        problems.push(
          located(
            file,
            lineNo,
            `expected key=value in [${section.group}:vars], got ${JSON.stringify(line)}`,
            CODES.inventoryShape,
          ),
        );
        return;
      }
      const value = shellParse(m[2]!)
        .filter((w): w is string => typeof w === 'string')
        .join(' ');
      groupVars.set(section.group, { ...(groupVars.get(section.group) ?? {}), [m[1]!]: value });
      return;
    }
    const [name, ...assignments] = words;
    if (!name || !new RegExp(HOST_NAME).test(name)) {
      problems.push(located(file, lineNo, `invalid host name ${JSON.stringify(name ?? line)}`, CODES.inventoryShape));
      return;
    }
    const vars: Record<string, unknown> = {};
    for (const a of assignments) {
      const eq = a.indexOf('=');
      if (eq <= 0) {
        problems.push(
          located(file, lineNo, `host "${name}": expected key=value, got ${JSON.stringify(a)}`, CODES.inventoryShape),
        );
        continue;
      }
      vars[a.slice(0, eq)] = a.slice(eq + 1);
    }
    let host = byName.get(name);
    if (!host) {
      host = { name, vars: {}, line: lineNo };
      byName.set(name, host);
      hostOrder.push(host);
    }
    Object.assign(host.vars, vars);
    const members = groupHosts.get(section.group) ?? [];
    if (!listed.has(`${section.group}\u0000${name}`)) {
      listed.add(`${section.group}\u0000${name}`);
      members.push(name);
      groupHosts.set(section.group, members);
    }
  });
  return fromAnsible(file, hostOrder, groupHosts, children, groupVars, problems, childLines);
}

/** Ansible YAML: `all: { hosts, vars, children: { group: { hosts, vars, children } } }`. */
function parseAnsibleYaml(src: YamlSource, problems: Problem[]): InventoryData {
  const hostOrder: AnsibleHost[] = [];
  const byName = new Map<string, AnsibleHost>();
  const groupHosts = new Map<string, string[]>();
  const children = new Map<string, string[]>();
  const groupVars = new Map<string, Record<string, unknown>>();
  const listed = new Set<string>();
  const visit = (group: string, node: unknown, at: (string | number)[]) => {
    if (node === null || node === undefined) node = {};
    if (typeof node !== 'object' || Array.isArray(node)) {
      problems.push(
        src.problem(at, `group "${group}" must be a mapping with hosts, vars and children`, CODES.inventoryShape),
      );
      return;
    }
    const g = node as {
      hosts?: Record<string, unknown>;
      vars?: Record<string, unknown>;
      children?: Record<string, unknown>;
    };
    for (const key of Object.keys(g)) {
      if (!['hosts', 'vars', 'children'].includes(key))
        problems.push(
          src.problem(
            [...at, key],
            `unknown key "${key}" in group "${group}"${didYouMean(key, ['hosts', 'vars', 'children'])}; expected hosts, vars, children`,
            CODES.unknownKey,
            { at: 'key' },
          ),
        );
    }
    if (g.vars) groupVars.set(group, { ...(groupVars.get(group) ?? {}), ...g.vars });
    const members = groupHosts.get(group) ?? [];
    for (const [name, hv] of Object.entries(g.hosts ?? {})) {
      let host = byName.get(name);
      if (!host) {
        host = { name, vars: {}, line: src.locate([...at, 'hosts', name], 'key').line };
        byName.set(name, host);
        hostOrder.push(host);
      }
      Object.assign(host.vars, (hv as Record<string, unknown> | null) ?? {});
      if (!listed.has(`${group}\u0000${name}`)) {
        listed.add(`${group}\u0000${name}`);
        members.push(name);
      }
    }
    groupHosts.set(group, members);
    for (const [child, cv] of Object.entries(g.children ?? {})) {
      children.set(group, [...(children.get(group) ?? []), child]);
      visit(child, cv, [...at, 'children', child]);
    }
  };
  const doc = src.data as Record<string, unknown>;
  for (const [group, node] of Object.entries(doc)) visit(group, node, [group]);
  return fromAnsible(src.file, hostOrder, groupHosts, children, groupVars, problems);
}

/** Loads an inventory in any supported format, with every problem located. */
export function loadInventoryText(file: string, text: string): LoadedInventory {
  const problems: Problem[] = [];
  let data: InventoryData;
  let format: Inventory['format'];
  const bytes = Buffer.byteLength(text);
  if (bytes > INVENTORY_LIMITS.maxBytes) return { problems: [tooLargeProblem(file, bytes, INVENTORY_LIMITS)] };
  const looksIni =
    /\.(ini|cfg|hosts)$/.test(file) || /^\s*\[[^\]]+\]\s*$/m.test(text) || path.basename(file) === 'hosts';
  if (looksIni) {
    format = 'ansible-ini';
    data = parseAnsibleIni(file, text, problems);
  } else {
    const src = parseYamlSource(file, text, INVENTORY_LIMITS);
    problems.push(...src.problems);
    if (src.broken) return { problems: sortProblems(problems) };
    if (!src.data || typeof src.data !== 'object' || Array.isArray(src.data)) {
      return {
        problems: [
          located(
            file,
            1,
            'an inventory is a mapping with "hosts" (or an Ansible inventory with "all")',
            CODES.inventoryShape,
          ),
        ],
      };
    }
    if ('hosts' in (src.data as object)) {
      format = 'runbook';
      const schemaProblems = validateAgainstSchema(InventorySchema, src);
      problems.push(...schemaProblems);
      if (schemaProblems.length > 0) return { problems: sortProblems(problems) };
      data = fromOurs(src, problems);
    } else {
      format = 'ansible-yaml';
      data = parseAnsibleYaml(src, problems);
    }
  }
  if (data.hosts.length === 0 && problems.length === 0)
    problems.push(located(file, 1, 'the inventory has no hosts', CODES.inventoryShape));
  const sorted = sortProblems(problems);
  return { inventory: sorted.length === 0 ? { ...data, file, format } : undefined, problems: sorted };
}

export function loadInventoryFile(file: string): LoadedInventory {
  let text: string;
  try {
    const bytes = fs.statSync(file).size;
    if (bytes > INVENTORY_LIMITS.maxBytes) return { problems: [tooLargeProblem(file, bytes, INVENTORY_LIMITS)] };
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UserError(
      `Cannot read inventory ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}.`,
      { cause: err },
    );
  }
  return loadInventoryText(file, text);
}

/** Loads an inventory or throws a UserError listing every problem. */
export function loadInventory(file: string): Inventory {
  const { inventory, problems } = loadInventoryFile(file);
  if (!inventory) throw new UserError(`Inventory ${file} is invalid:\n${problems.map(formatProblem).join('\n')}`);
  return inventory;
}

function resolvePath(inv: Inventory, p: string): string {
  const expanded = p.startsWith('~/') ? path.join(os.homedir(), p.slice(2)) : p;
  return path.resolve(path.dirname(path.resolve(inv.file)), expanded);
}

/** The key and known_hosts of a host whose inventory names none (the worker's RUNBOOK_SSH_KEY, RUNBOOK_KNOWN_HOSTS). */
export interface SshLoginDefaults {
  /** @default ~/.ssh/id_ed25519 */
  identityFile: string;
  /** @default ~/.ssh/known_hosts */
  knownHosts: string;
}

export const DEFAULT_SSH_LOGIN: SshLoginDefaults = {
  identityFile: '~/.ssh/id_ed25519',
  knownHosts: '~/.ssh/known_hosts',
};

/**
 * The SSH login for one inventory host. Key and known_hosts come from the host's vars, else the inventory's
 * vars (`identityFile`, `knownHosts`, or Ansible's `ansible_ssh_private_key_file`), else `defaults`.
 */
export function sshTargetFor(inv: Inventory, name: string, defaults: SshLoginDefaults): SshTarget {
  const host = inv.hosts.find((h) => h.name === name);
  if (!host) {
    throw new UserError(
      `${inv.file}: no host named "${name}"${didYouMean(
        name,
        inv.hosts.map((h) => h.name),
      )}.`,
    );
  }
  const pick = (...keys: string[]) => {
    for (const source of [host.vars, inv.vars])
      for (const k of keys) if (typeof source[k] === 'string') return source[k] as string;
    return undefined;
  };
  const user = host.user ?? pick('user');
  if (!user) throw new UserError(`${inv.file}: host "${name}" has no user (set user, vars.user or ansible_user).`);
  const identity = pick('identityFile', 'ansible_ssh_private_key_file') ?? defaults.identityFile;
  const knownHosts = pick('knownHosts') ?? defaults.knownHosts;
  return {
    name,
    address: host.address,
    port: host.port,
    user,
    identityFile: resolvePath(inv, identity),
    knownHosts: resolvePath(inv, knownHosts),
  };
}
