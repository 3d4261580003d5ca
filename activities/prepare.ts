// Node side. The prepare activity: load the runbook by name, validate it, coerce the params, load the inventory
// and resolve the targets, so the workflow receives validated JSON and records the content hash it ran. Any
// problem fails the run at once, before any step, with the located messages. The preparation itself is the
// CLI's too (dsl/prepare.ts); what is here is the worker's trust: runbook names confined to its directory,
// inventories on its allow-list, ad hoc commands only when allowed.
import fs from 'node:fs';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { FAILURES } from '../common/failure-types';
import { UserError } from '../common/errors';
import { sshTargetFor } from '../dsl/inventory';
import type { ParamValue } from '../dsl/params';
import { loadValidInventory, PrepareError, prepareRunbook } from '../dsl/prepare';
import { isRunbookFileName } from '../dsl/load';
import type { RunbookDoc } from '../dsl/schema';
import type { InventoryData, SshTarget } from '../dsl/selector';
import type { EngineConfig } from './config';
import type { WindowSpec } from '../workflows/window';
import { runWindow } from './window';

export interface PrepareInput {
  runbook: string;
  /** The runbook's YAML when the run carries it (`runbook run FILE.yaml`); only if the worker allows runbook files. */
  source?: string;
  params: Record<string, unknown>;
  /** An inventory on the worker's allow-list; default its RUNBOOK_INVENTORY. */
  inventory?: string;
  alert?: Record<string, unknown>;
}

export interface PreparedRun {
  name: string;
  contentHash: string;
  /** `run`: the runbook came with the run (a file the starter sent); absent: the worker's runbook directory. */
  source?: 'run';
  runbook: RunbookDoc;
  params: Record<string, ParamValue>;
  selector?: string;
  /** The run's targets, in order. */
  targets: string[];
  inventory?: InventoryData;
  /** SSH login of every inventory host (paths and references only). */
  ssh: Record<string, SshTarget>;
  /** The change calendars the run keeps to (its `window` and the global ones); absent: none. */
  window?: WindowSpec;
}

const invalid = (type: string, message: string) => ApplicationFailure.create({ type, message, nonRetryable: true });

/** The real path of an existing file, else undefined (a refused name gets the same answer whether it exists or not). */
function realFile(file: string): string | undefined {
  try {
    return fs.realpathSync(file);
  } catch {
    return undefined;
  }
}

/**
 * The runbook file of a name: NAME.yaml (or .yml) directly in the runbook directory. Names only (the input
 * schema allows `[a-z][a-z0-9-]*`), so nothing outside the directory can be named.
 */
export function runbookFileFor(config: EngineConfig, name: string): string {
  const dir = realFile(config.runbookDir);
  if (!/^[a-z][a-z0-9-]*$/.test(name) || !isRunbookFileName(`${name}.yaml`) || !dir) {
    throw invalid(
      FAILURES.unknownRunbook,
      `"${name.slice(0, 128)}" is not a runbook name: runs name a runbook of the worker's runbook directory (letters, digits, -)`,
    );
  }
  for (const ext of ['.yaml', '.yml']) {
    const file = path.join(dir, name + ext);
    if (fs.statSync(file, { throwIfNoEntry: false })?.isFile()) return file;
  }
  const known = fs
    .readdirSync(dir)
    .filter(isRunbookFileName)
    .map((f) => f.replace(/\.ya?ml$/, ''));
  throw invalid(
    FAILURES.unknownRunbook,
    `No runbook named "${name}" in the worker's runbook directory${known.length ? ` (there are: ${known.join(', ')})` : ''}.`,
  );
}

/**
 * The name messages give a runbook the run carries (`NAME.yaml (sent with the run)`), once the worker allows that.
 * Its `metadata.name` must be NAME (the loader checks it against the file name, as for a file of the directory).
 */
function carriedRunbookName(config: EngineConfig, name: string): string {
  if (!config.allowRunbookFiles) {
    throw invalid(
      FAILURES.runbookFilesDisabled,
      `This run carries its runbook (${name.slice(0, 128)}.yaml, as \`runbook run FILE.yaml\` sends it), and this worker runs ` +
        "only the runbooks of its own directory. Put the file in the worker's RUNBOOK_DIR and run it by name, or start " +
        'the worker with RUNBOOK_ALLOW_RUNBOOK_FILES=on (the default of `runbook dev`; on a production worker it lets ' +
        'anyone who can start a workflow run any command on the hosts of its inventories).',
    );
  }
  return `${name}.yaml`;
}

/**
 * The inventory a run names, which must be on the worker's allow-list (compared by real path); the default
 * without a name. The refusal never says whether the file exists, and never reads it.
 */
export function inventoryFileFor(config: EngineConfig, named: string | undefined): string | undefined {
  if (named === undefined) return config.defaultInventory;
  // The usual case costs no file system call: the run names an allowed path as configured.
  const resolved = path.resolve(named);
  if (config.inventories.includes(resolved)) return resolved;
  const wanted = realFile(resolved);
  const match = wanted && config.inventories.find((f) => realFile(f) === wanted);
  if (!match) {
    throw invalid(
      FAILURES.inventoryInvalid,
      `Inventory "${named.slice(0, 256)}" is not one this worker serves. Runs may name only the ` +
        `inventories on the worker's allow-list (RUNBOOK_INVENTORY, RUNBOOK_INVENTORIES)${config.inventories.length ? `: ${config.inventories.join(', ')}` : ', which is empty'}.`,
    );
  }
  return match;
}

/** Runs `fn`, turning a PrepareError into the final failure of its type (the run is refused at once). */
function refusing<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof PrepareError) throw invalid(err.type, err.message);
    throw err;
  }
}

/** The SSH login of one host of an allowed inventory, for an ad hoc command (`runCommand`). */
export function prepareExec(config: EngineConfig, input: { host: string; inventory?: string }): SshTarget {
  if (!config.allowExec) {
    throw invalid(
      FAILURES.execDisabled,
      'This worker does not run ad hoc commands (runCommand, `runbook exec`): start it with RUNBOOK_ALLOW_EXEC=on to allow them. ' +
        'Runbooks run as usual.',
    );
  }
  const file = inventoryFileFor(config, input.inventory);
  if (!file)
    throw invalid(FAILURES.inventoryInvalid, 'No inventory: name one, or set RUNBOOK_INVENTORY on the worker.');
  try {
    return sshTargetFor(
      refusing(() => loadValidInventory(file)),
      input.host,
      config.ssh,
    );
  } catch (err) {
    if (err instanceof UserError) throw invalid(FAILURES.targetsInvalid, err.message);
    throw err;
  }
}

/** Prepares a run of a runbook in the worker's directory, against an inventory on its allow-list (dsl/prepare.ts does the rest). */
export function prepareRun(config: EngineConfig, input: PrepareInput): PreparedRun {
  const carried = input.source !== undefined;
  const runbookFile = carried ? carriedRunbookName(config, input.runbook) : runbookFileFor(config, input.runbook);
  const { runbook, contentHash, params, selector, hosts, inventory } = refusing(() =>
    prepareRunbook({
      runbookFile,
      runbookText: input.source,
      params: input.params ?? {},
      inventoryFile: () => inventoryFileFor(config, input.inventory),
      run: { id: '', initiator: '', trigger: '' },
      alert: input.alert,
    }),
  );
  const ssh: Record<string, SshTarget> = {};
  if (inventory) {
    for (const h of inventory.hosts) {
      try {
        ssh[h.name] = sshTargetFor(inventory, h.name, config.ssh);
      } catch {
        /* a host without a user is only an error if a step acts on it */
      }
    }
  }
  const window = runWindow(config.calendars, runbook);
  if (typeof window === 'string') throw invalid(FAILURES.runbookInvalid, `${runbookFile}: ${window}.`);
  return {
    name: runbook.metadata.name,
    contentHash,
    ...(carried ? { source: 'run' as const } : {}),
    runbook,
    params,
    selector,
    targets: hosts.map((h) => h.name),
    inventory: inventory ? { hosts: inventory.hosts, groups: inventory.groups, vars: inventory.vars } : undefined,
    ssh,
    ...(window ? { window } : {}),
  };
}
