// Node side. The prepare activity: load the runbook by name, validate it, coerce the params, load the inventory
// and resolve the targets, so the workflow receives validated JSON and records the content hash it ran. Any
// problem fails the run at once, before any step, with the located messages.
import { ApplicationFailure } from '@temporalio/common';
import { UserError } from '../common/errors';
import { loadInventoryFile, sshTargetFor, type Inventory } from '../dsl/inventory';
import { loadRunbookFile, resolveRunbookPath } from '../dsl/load';
import { coerceParams, type ParamValue } from '../dsl/params';
import { planTargets } from '../dsl/plan';
import { formatProblem } from '../dsl/problems';
import type { RunbookDoc } from '../dsl/schema';
import type { InventoryData } from '../dsl/selector';
import type { SshTarget } from './ssh/pool';

export interface PrepareInput {
  runbook: string;
  params: Record<string, unknown>;
  /** Inventory file on the worker; default RUNBOOK_INVENTORY. */
  inventory?: string;
  alert?: Record<string, unknown>;
}

export interface PreparedRun {
  name: string;
  contentHash: string;
  runbook: RunbookDoc;
  params: Record<string, ParamValue>;
  selector?: string;
  /** The run's targets, in order. */
  targets: string[];
  inventory?: InventoryData;
  /** SSH login of every inventory host (paths and references only). */
  ssh: Record<string, SshTarget>;
}

const invalid = (type: string, message: string) => ApplicationFailure.create({ type, message, nonRetryable: true });

export function prepareRun(input: PrepareInput): PreparedRun {
  let file: string;
  try {
    file = resolveRunbookPath(input.runbook);
  } catch (err) {
    throw invalid('UnknownRunbook', (err as Error).message);
  }
  let loaded;
  try {
    loaded = loadRunbookFile(file);
  } catch (err) {
    throw invalid('UnknownRunbook', (err as Error).message);
  }
  if (!loaded.runbook) {
    throw invalid('RunbookInvalid', `${file} is not a valid runbook:\n${loaded.problems.filter((p) => p.severity === 'error').map(formatProblem).join('\n')}`);
  }
  const rb = loaded.runbook;
  const { values, errors } = coerceParams(rb.params ?? {}, input.params ?? {}, Object.keys(rb.secrets ?? {}));
  if (errors.length) {
    throw invalid('ParamsInvalid', `Invalid params for ${rb.metadata.name}:\n${errors.map((e) => `params.${e.param}: ${e.message} [${e.code}]`).join('\n')}`);
  }
  const invFile = input.inventory ?? process.env.RUNBOOK_INVENTORY;
  let inventory: Inventory | undefined;
  if (invFile) {
    let inv;
    try {
      inv = loadInventoryFile(invFile);
    } catch (err) {
      throw invalid('InventoryInvalid', err instanceof UserError ? err.message : String(err));
    }
    if (!inv.inventory) throw invalid('InventoryInvalid', `Inventory ${invFile} is invalid:\n${inv.problems.map(formatProblem).join('\n')}`);
    inventory = inv.inventory;
  }
  const targets = planTargets({ runbook: rb, contentHash: loaded.contentHash, params: values, inventory: inventory ?? undefined, run: { id: '', initiator: '', trigger: '' }, alert: input.alert });
  if (targets.errors.length) {
    throw invalid('TargetsInvalid', `Cannot resolve the targets of ${rb.metadata.name}:\n${targets.errors.map((e) => `targets: ${e.message} [${e.code}]`).join('\n')}`);
  }
  const ssh: Record<string, SshTarget> = {};
  if (inventory) {
    for (const h of inventory.hosts) {
      try {
        ssh[h.name] = sshTargetFor(inventory, h.name);
      } catch { /* a host without a user is only an error if a step acts on it */ }
    }
  }
  return { name: rb.metadata.name, contentHash: loaded.contentHash, runbook: rb, params: values, selector: targets.selector,
    targets: targets.hosts.map((h) => h.name), inventory: inventory ? { hosts: inventory.hosts, groups: inventory.groups, vars: inventory.vars } : undefined, ssh };
}
