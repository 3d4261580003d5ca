// Node side (reads files). The inventory: hosts with address, port, user and labels, groups, and connection
// vars (identity file, known_hosts). A first cut of the format; the language issue extends it and adds
// Ansible inventories.
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { UserError, messageOf } from '../common/errors';
import type { SshTarget } from '../activities/ssh/pool';

export interface InventoryHost {
  address: string;
  port?: number;
  user?: string;
  labels?: Record<string, string>;
}

export interface Inventory {
  file: string;
  hosts: Record<string, InventoryHost>;
  groups: Record<string, string[]>;
  vars: { identityFile?: string; knownHosts?: string; user?: string };
}

export function loadInventory(file: string): Inventory {
  let doc: unknown;
  try {
    doc = YAML.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new UserError(`Cannot read inventory ${file}: ${messageOf(err)}`, { cause: err });
  }
  const inv = (doc ?? {}) as Partial<Inventory>;
  if (typeof inv.hosts !== 'object' || inv.hosts === null) {
    throw new UserError(`${file}: the inventory has no "hosts" mapping.`);
  }
  const base = path.dirname(path.resolve(file));
  const vars = { ...(inv.vars ?? {}) };
  if (vars.identityFile) vars.identityFile = path.resolve(base, vars.identityFile);
  if (vars.knownHosts) vars.knownHosts = path.resolve(base, vars.knownHosts);
  return { file, hosts: inv.hosts, groups: inv.groups ?? {}, vars };
}

/** The SSH login for one inventory host. */
export function sshTargetFor(inv: Inventory, name: string): SshTarget {
  const host = inv.hosts[name];
  if (!host) {
    const known = Object.keys(inv.hosts);
    throw new UserError(`${inv.file}: no host named "${name}" (known: ${known.slice(0, 10).join(', ')}` +
      `${known.length > 10 ? ', ...' : ''}).`);
  }
  const user = host.user ?? inv.vars.user;
  if (!user) throw new UserError(`${inv.file}: host "${name}" has no user and vars.user is not set.`);
  if (!inv.vars.identityFile || !inv.vars.knownHosts) {
    throw new UserError(`${inv.file}: vars.identityFile and vars.knownHosts must name the SSH key and known_hosts files.`);
  }
  return { name, address: host.address, port: host.port ?? 22, user, identityFile: inv.vars.identityFile,
    knownHosts: inv.vars.knownHosts };
}
