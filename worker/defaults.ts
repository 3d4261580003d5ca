// Node side. Defaults and settings that the CLI and the worker's configuration (./config.ts) share, in a module that
// loads nothing heavy: the CLI reads them before it knows which command runs, and `validate`/`plan` need no client.
import path from 'node:path';
import { UserError } from '../common/errors';

/** Where the worker serves Prometheus metrics unless told otherwise. */
export const DEFAULT_METRICS_ADDRESS = '127.0.0.1:9464';

/** The alert receiver's port unless told otherwise. */
export const DEFAULT_RECEIVER_PORT = 9280;

/** The runbooks directory as configured (RUNBOOK_DIR, else ./runbooks), unresolved, for the CLI's messages. */
export function runbookDirFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  return env.RUNBOOK_DIR ?? 'runbooks';
}

/**
 * The one rule for which inventory a run uses, the same in the CLI (plan, run, exec) and the worker: the one named
 * (`-i`, the run's `inventory` field), else RUNBOOK_INVENTORY; absolute. The worker then accepts only the
 * inventories on its allow-list, so the CLI sends what it resolved here and both ends check the same file.
 */
export function inventoryFor(named: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (named !== undefined && named.trim() === '')
    throw new UserError('-i / --inventory is empty: give an inventory file, or leave it out to use RUNBOOK_INVENTORY.');
  const file = named ?? (env.RUNBOOK_INVENTORY || undefined);
  return file === undefined ? undefined : path.resolve(file);
}
