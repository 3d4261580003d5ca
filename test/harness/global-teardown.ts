// Test harness (Node side). Stops what global-setup started and removes its temporary directory.
import fs from 'node:fs';
import { fleetDown } from '../../fleet/fleet';

export default async function globalTeardown(): Promise<void> {
  if (globalThis.runbookTestFleetDir) await fleetDown(globalThis.runbookTestFleetDir).catch(() => undefined);
  await globalThis.runbookTestServer?.stop();
  await globalThis.runbookTestPostgres?.stop().catch(() => undefined);
  const root = process.env.RUNBOOK_TEST_ROOT;
  if (root && process.env.RUNBOOK_KEEP_TEST_DIR !== '1') fs.rmSync(root, { recursive: true, force: true });
}
