// Test harness (Node side). Once per jest run: one Temporal dev server (in memory, headless, free ports) and one
// real sshd fleet. Tests find them through RUNBOOK_TEST_* environment variables (see ./env.ts).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../common/ports';
import { fleetUp } from '../../fleet/fleet';
import { startDevServer, type DevServer } from '../../worker/dev-server';
import { ensureTemporalCli } from '../../worker/temporal-cli';
import { startPostgres, type PgServer } from './postgres';

export const FLEET_HOSTS = 3;

declare global {
  var runbookTestServer: DevServer | undefined;
  var runbookTestFleetDir: string | undefined;
  var runbookTestPostgres: PgServer | undefined;
}

export default async function globalSetup(): Promise<void> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'runbook-test-'));
  fs.chmodSync(root, 0o755); // fleet users live below it
  const cli = await ensureTemporalCli((line) => process.stderr.write(`${line}\n`));
  const server = await startDevServer({
    cli: cli.path,
    port: await freePort(),
    headless: true,
    logFile: path.join(root, 'temporal.log'),
  });
  globalThis.runbookTestServer = server;
  const fleetDir = path.join(root, 'fleet');
  await fleetUp({ hosts: FLEET_HOSTS, dir: fleetDir });
  globalThis.runbookTestFleetDir = fleetDir;
  const pg = await startPostgres(path.join(root, 'postgres'));
  globalThis.runbookTestPostgres = pg;
  process.env.RUNBOOK_TEST_PG_URL = pg.url;
  process.env.RUNBOOK_TEST_PG_ADMIN_URL = pg.adminUrl;
  // Workers started by tests write their change records here unless a test chooses its own store.
  process.env.AUDIT_URL = `file:${path.join(root, 'audit.jsonl')}`;
  process.env.RUNBOOK_TEST_ROOT = root;
  process.env.RUNBOOK_TEST_TEMPORAL_ADDRESS = server.address;
  process.env.RUNBOOK_TEST_TEMPORAL_CLI = cli.path;
  process.env.RUNBOOK_TEST_FLEET_DIR = fleetDir;
  // What the workers started by tests trust: the fleet's inventory, and ad hoc commands (`runCommand`).
  process.env.RUNBOOK_INVENTORIES = path.join(fleetDir, 'inventory.yaml');
  process.env.RUNBOOK_ALLOW_EXEC = 'on';
}
