// Node side (reads the runbook and inventory files, like load.ts and inventory.ts; workflows import its types
// only). One run preparation for the CLI (`plan`, `run`) and the worker's prepare activity: load and validate the
// runbook, coerce the params, load the inventory, resolve the targets, and keep the content hash. Which files may
// be read is the caller's decision: the CLI takes any name or path, the worker confines names to its runbook
// directory and inventories to its allow-list. Every problem throws a PrepareError naming its failure type.
import { UserError } from '../common/errors';
import { FAILURES } from '../common/failure-types';
import { loadInventoryFile, type Inventory } from './inventory';
import { loadRunbookFile, loadRunbookText, type LoadedRunbook } from './load';
import { coerceParams, type ParamValue } from './params';
import { planTargets, type PlanInput } from './plan';
import { formatProblem } from './problems';
import type { RunbookDoc } from './schema';
import type { SelectorError, TargetHost } from './selector';

/** The failure types a preparation ends with. */
export type PrepareFailure = (typeof FAILURES)[
  'unknownRunbook' | 'runbookInvalid' | 'paramsInvalid' | 'inventoryInvalid' | 'targetsInvalid'];

/**
 * Thrown when a run cannot be prepared: `type` says what is wrong (a FAILURES name), `message` lists every
 * located problem. When a file could not be read, `cause` is the loader's error.
 */
export class PrepareError extends Error {
  override name = 'PrepareError' as const;

  constructor(
    readonly type: PrepareFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A runbook that loaded without errors. */
export type ValidRunbook = LoadedRunbook & { runbook: RunbookDoc };

/**
 * Loads a runbook file (or, given `text`, the runbook a run carries, under the name `file`); a file that cannot be
 * read, or has any error, throws.
 */
export function loadValidRunbook(file: string, text?: string): ValidRunbook {
  let loaded: LoadedRunbook;
  try {
    loaded = text === undefined ? loadRunbookFile(file) : loadRunbookText(file, text);
  } catch (err) {
    throw new PrepareError(FAILURES.unknownRunbook, (err as Error).message, { cause: err });
  }
  if (!loaded.runbook) {
    throw new PrepareError(
      FAILURES.runbookInvalid,
      `${loaded.file} is not a valid runbook:\n${loaded.problems
        .filter((p) => p.severity === 'error')
        .map(formatProblem)
        .join('\n')}`,
    );
  }
  return loaded as ValidRunbook;
}

/** Loads an inventory file; a file that cannot be read, or has any problem, throws. */
export function loadValidInventory(file: string): Inventory {
  let loaded;
  try {
    loaded = loadInventoryFile(file);
  } catch (err) {
    throw new PrepareError(FAILURES.inventoryInvalid, err instanceof UserError ? err.message : String(err), {
      cause: err,
    });
  }
  if (!loaded.inventory)
    throw new PrepareError(
      FAILURES.inventoryInvalid,
      `Inventory ${file} is invalid:\n${loaded.problems.map(formatProblem).join('\n')}`,
    );
  return loaded.inventory;
}

/** The message of targets that do not resolve (the run's selector, or a step's). */
export function targetsProblem(runbook: RunbookDoc, errors: SelectorError[]): PrepareError {
  return new PrepareError(
    FAILURES.targetsInvalid,
    `Cannot resolve the targets of ${runbook.metadata.name}:\n${errors.map((e) => `targets: ${e.message} [${e.code}]`).join('\n')}`,
  );
}

export interface RunPreparation {
  /** The runbook file, as the caller chose it. */
  runbookFile: string;
  /** The runbook's text when the run carries it (then `runbookFile` only names it in messages). */
  runbookText?: string;
  /** Param inputs: strings from the CLI, typed values from the UI's JSON, alert labels. */
  params: Record<string, unknown>;
  /**
   * The inventory file, if any, as the caller allows it. Asked only once the runbook and its params are valid,
   * so those problems come first (and the worker checks no inventory for a run it refuses anyway).
   */
  inventoryFile: () => string | undefined;
  /** What templates see as `run` while the targets are rendered. */
  run: PlanInput['run'];
  alert?: Record<string, unknown>;
  /** Name the runbook file in a params message (the CLI's operator has the file; the worker's messages name the runbook only). @default false */
  paramsNameFile?: boolean;
}

/** A prepared run: everything `planRun` takes, the file it came from, and its targets in order. */
export interface PreparedRunbook extends PlanInput {
  file: string;
  params: Record<string, ParamValue>;
  inventory?: Inventory;
  selector?: string;
  hosts: TargetHost[];
}

/** Loads and checks everything a run needs before its first step; throws a PrepareError on the first kind of problem found. */
export function prepareRunbook(input: RunPreparation): PreparedRunbook {
  const loaded = loadValidRunbook(input.runbookFile, input.runbookText);
  const rb = loaded.runbook;
  const { values, errors } = coerceParams(rb.params ?? {}, input.params, Object.keys(rb.secrets ?? {}));
  if (errors.length) {
    const where = input.paramsNameFile ? ` (${loaded.file})` : '';
    throw new PrepareError(
      FAILURES.paramsInvalid,
      `Invalid params for ${rb.metadata.name}${where}:\n${errors.map((e) => `params.${e.param}: ${e.message} [${e.code}]`).join('\n')}`,
    );
  }
  const inventoryFile = input.inventoryFile();
  const inventory = inventoryFile ? loadValidInventory(inventoryFile) : undefined;
  const prepared = {
    runbook: rb,
    contentHash: loaded.contentHash,
    file: loaded.file,
    params: values,
    inventory,
    run: input.run,
    alert: input.alert,
  };
  const targets = planTargets(prepared);
  if (targets.errors.length) throw targetsProblem(rb, targets.errors);
  return { ...prepared, selector: targets.selector, hosts: targets.hosts };
}
