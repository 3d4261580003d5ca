// Node side. `npm run screenshots`: the README's pictures of the Temporal Web UI telling a run's story, taken from a
// real stack. It starts a 3-host sshd fleet (needs root) and `runbook dev` in a temporary directory (or, with
// --address and --ui, uses a running stack whose worker serves test/fixtures/runbooks and --inventory), starts the
// story run (test/fixtures/runbooks/ui-story.yaml), and with headless Chromium takes:
//
//   run-details.png   the run's User Metadata tab while host-1 waits for its approval: summary, details, current
//                     details (status, batch, hosts, the pending approval), the activities' summaries
//   run-history.png   its event history, each activity with its summary (step, host, command as audited)
//   run-finished.png  the same tab once every approval was given and the run succeeded
//   workflows.png     the workflows list with the engine's search attributes as columns
//
// Written to docs/screenshots/ (or --out DIR). Everything it started is stopped and removed at the end.
/* eslint-disable no-console -- a command-line script: what it wrote is its output */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { Page } from 'puppeteer-core';
import { fleetDown, fleetUp } from '../fleet/fleet';
import {
  approveUntilDone,
  assertNotShown,
  fitFrames,
  launchChromium,
  REPO,
  runPage,
  startDevStack,
  startStoryRun,
  STORY_SECRET,
  waitForState,
  waitForTexts,
  type DevStack,
} from './ui-pages';

interface Options {
  out: string;
  address?: string;
  ui?: string;
  inventory?: string;
}

function parseArgs(argv: string[]): Options {
  const opts: Options = { out: path.join(REPO, 'docs', 'screenshots') };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === '--out') opts.out = path.resolve(value);
    else if (flag === '--address') opts.address = value;
    else if (flag === '--ui') opts.ui = value.replace(/\/$/, '');
    else if (flag === '--inventory') opts.inventory = path.resolve(value);
    else throw new Error(`unknown option ${flag}; use --out DIR, or --address HOST:PORT --ui URL --inventory FILE`);
  }
  if ((opts.address || opts.ui || opts.inventory) && !(opts.address && opts.ui && opts.inventory))
    throw new Error('to use a running stack give all of --address, --ui and --inventory');
  return opts;
}

/** The workflows list shows these columns (the UI keeps its column choice in local storage). */
const LIST_COLUMNS = [
  'Status',
  'Workflow ID',
  'RunbookName',
  'RunbookStatus',
  'RunbookTargets',
  'Initiator',
  'Trigger',
  'Start',
  'End',
];

async function shoot(page: Page, file: string): Promise<void> {
  await assertNotShown(page, STORY_SECRET);
  await fitFrames(page);
  await page.screenshot({ path: file });
  console.log(`wrote ${path.relative(process.cwd(), file)}`);
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  fs.mkdirSync(opts.out, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'runbook-screens-'));
  fs.chmodSync(tmp, 0o755); // fleet users live below it
  const fleetDir = path.join(tmp, 'fleet');
  let stack: DevStack | undefined;
  let fleet = false;
  try {
    let inventory = opts.inventory;
    if (!inventory) {
      if (process.getuid?.() !== 0)
        throw new Error('starting a fleet needs root (or give --address, --ui and --inventory)');
      await fleetUp({ hosts: 3, dir: fleetDir });
      fleet = true;
      inventory = path.join(fleetDir, 'inventory.yaml');
      stack = await startDevStack({ dataDir: path.join(tmp, 'dev'), inventory });
    }
    const address = opts.address ?? stack!.address;
    const ui = opts.ui ?? stack!.ui;
    const connection = await Connection.connect({ address });
    const browser = await launchChromium();
    try {
      const client = new Client({ connection });
      const handle = await startStoryRun(client, { inventory });
      const runId = handle.firstExecutionRunId;
      await waitForState(
        handle,
        (s) => s.pendingApprovals.some((p) => p.id === 'steps[3]@host-1'),
        'host-1 waiting at confirm',
      );

      const page = await browser.newPage();
      await page.setViewport({ width: 1440, height: 1100 });
      await page.goto(runPage(ui, handle.workflowId, runId, 'user-metadata'), { waitUntil: 'networkidle2' });
      await waitForTexts(page, 'frame', ['Pending approvals', 'steps[3]@host-1']);
      await waitForTexts(page, 'page', ['restart on host-1']);
      await shoot(page, path.join(opts.out, 'run-details.png'));

      await page.setViewport({ width: 1440, height: 1500 });
      await page.goto(runPage(ui, handle.workflowId, runId, 'history'), { waitUntil: 'networkidle2' });
      await waitForTexts(page, 'page', ['restart on host-1', 'check, drain on host-1']);
      await shoot(page, path.join(opts.out, 'run-history.png'));

      await approveUntilDone(handle);
      await page.setViewport({ width: 1440, height: 1100 });
      await page.goto(runPage(ui, handle.workflowId, runId, 'user-metadata'), { waitUntil: 'networkidle2' });
      await waitForTexts(page, 'frame', ['Status: succeeded', 'Result: succeeded']);
      await waitForTexts(page, 'page', ['verify on host-3']);
      await shoot(page, path.join(opts.out, 'run-finished.png'));

      const columns = JSON.stringify({ default: LIST_COLUMNS.map((label) => ({ label })) });
      await page.evaluate(`localStorage.setItem('namespace-workflow-table-columns', ${JSON.stringify(columns)})`);
      await page.setViewport({ width: 1440, height: 700 });
      await page.goto(`${ui}/namespaces/default/workflows?query=${encodeURIComponent('WorkflowType="runbook"')}`, {
        waitUntil: 'networkidle2',
      });
      await waitForTexts(page, 'page', [handle.workflowId, 'RunbookTargets']);
      await shoot(page, path.join(opts.out, 'workflows.png'));
    } finally {
      await browser.close();
      await connection.close();
    }
  } finally {
    await stack?.stop();
    if (fleet)
      await fleetDown(fleetDir).catch((err: unknown) => console.error(`fleet down: ${(err as Error).message}`));
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`ui-screenshots: ${(err as Error).message}`);
  process.exit(1);
});
