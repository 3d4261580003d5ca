// Integration: the Temporal Web UI tells a run's story. A real `runbook dev` (dev server with its UI, worker, history
// encrypted and decrypted for the UI by its codec server) runs the story runbook on the harness's sshd fleet; headless
// Chromium (Debian's, through puppeteer-core) loads the run's pages and must find each activity's summary (step, host,
// the command as audited, a secret only by reference) and the current details (status, batch, hosts, the pending
// approval; the result once it ended), while history holds the summaries only encrypted. The UI server's own
// Markdown renderer gets hostile run details and must make no link, image or tag of them. Without Chromium this
// fails, saying how to install it: nothing here is skipped.
import fs from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { Browser, Page } from 'puppeteer-core';
import { dataConverterFor, ENCRYPTED_ENCODING, newKeyEntry, parseCodecKeys } from '../../common/codec';
import { runDetails, runSummary } from '../../common/run-metadata';
import { fleetDir, testRoot } from '../harness/env';
import {
  approveUntilDone,
  assertNotShown,
  chromiumPath,
  launchChromium,
  runPage,
  startDevStack,
  startStoryRun,
  STORY_SECRET,
  waitForState,
  waitForTexts,
  type DevStack,
} from '../../scripts/ui-pages';

let stack: DevStack | undefined;
let browser: Browser | undefined;
let connection: Connection | undefined;
let page: Page;
const codecKeys = newKeyEntry('ui');
/** A client that encrypts and decrypts like the stack's worker. */
const client = () =>
  new Client({ connection: connection!, dataConverter: dataConverterFor(parseCodecKeys(codecKeys, 'test')) });

const inventory = () => path.join(fleetDir(), 'inventory.yaml');

beforeAll(async () => {
  chromiumPath(); // first: a missing browser fails here with how to install it, before a stack is started
  stack = await startDevStack({
    dataDir: fs.mkdtempSync(path.join(testRoot(), 'ui-dev-')),
    inventory: inventory(),
    codecKeys,
  });
  connection = await Connection.connect({ address: stack.address });
  browser = await launchChromium();
  page = await browser.newPage();
  await page.setViewport({ width: 1440, height: 1400 });
}, 240_000);

afterAll(async () => {
  await browser?.close();
  await connection?.close();
  await stack?.stop();
}, 60_000);

test('the run page shows each step by id, host and audited command, and the current details follow the run', async () => {
  const handle = await startStoryRun(client(), { inventory: inventory() });
  const runId = handle.firstExecutionRunId;
  await waitForState(handle, (s) => s.pendingApprovals.some((p) => p.id === 'steps[3]@host-1'), 'host-1 at confirm');

  // While host-1 waits for its approval (batch 1 of 2).
  await page.goto(runPage(stack!.ui, handle.workflowId, runId, 'user-metadata'), { waitUntil: 'networkidle2' });
  await waitForTexts(page, 'page', [
    'prepare ui-story: load and check the runbook and params',
    'check, drain on host-1: 2 SSH steps in one activity',
    /restart on host-1: echo restarted '?nginx'? with <secret:api_token> \| sha256sum >> '?ui-[0-9a-f]{6}\.txt'?/,
    'approval steps[3]@host-1: wait for 1 approval',
    'record run.started: started',
  ]);
  await waitForTexts(page, 'frame', [
    'Status: running · batch 1 of 2',
    'Hosts: 3 · 1 running, 2 pending',
    'Pending approvals',
    'steps[3]@host-1: 0 of 1 approvals (users alice)',
    'is nginx healthy on host-1?',
    /host-1\s+running\s+confirm/,
    /host-2\s+pending/,
  ]);
  // The starter's summary and details, rendered: the runbook known, so params by type.
  await waitForTexts(page, 'frame', ['ui-story on all: service=nginx, marker=ui-', 'manual by alice']);
  await waitForTexts(page, 'frame', ['Runbook: ui-story', 'risk low', 'Started by: alice (manual)', 'Params']);
  await assertNotShown(page, STORY_SECRET);

  await page.goto(runPage(stack!.ui, handle.workflowId, runId, 'history'), { waitUntil: 'networkidle2' });
  await waitForTexts(page, 'page', ['restart on host-1: echo restarted', 'check, drain on host-1', 'Local Activity']);

  // Approved host by host to the end.
  expect((await approveUntilDone(handle)).status).toBe('succeeded');
  await page.goto(runPage(stack!.ui, handle.workflowId, runId, 'user-metadata'), { waitUntil: 'networkidle2' });
  await waitForTexts(page, 'frame', [
    'Status: succeeded · batch 2 of 2',
    'Hosts: 3 · 3 succeeded',
    'Result: succeeded · 0 failed (tolerated 0)',
    /Decisions: 3, last approve steps\[3\]@host-[23] by alice: looks healthy/,
    /host-3\s+succeeded/,
  ]);
  await waitForTexts(page, 'page', [
    'check, drain on host-3',
    'restart on host-2',
    'verify on host-3: cat',
    'record run.finished: succeeded',
  ]);
  await assertNotShown(page, STORY_SECRET);

  // In history itself every summary and details payload is ciphertext.
  const { history } = await connection!.workflowService.getWorkflowExecutionHistory({
    namespace: 'default',
    execution: { workflowId: handle.workflowId },
  });
  const metadata = (history?.events ?? []).flatMap((e) => [e.userMetadata?.summary, e.userMetadata?.details]);
  const payloads = metadata.filter((p) => p != null);
  expect(payloads.length).toBeGreaterThan(10);
  for (const p of payloads) {
    expect(Buffer.from(p.metadata!.encoding!).toString()).toBe(ENCRYPTED_ENCODING);
    expect(Buffer.from(p.data!).toString('latin1')).not.toContain('host-1');
  }
}, 240_000);

test('a sub-runbook carries its own summary and details', async () => {
  const handle = await client().workflow.start('runbook', {
    taskQueue: 'runbooks',
    workflowId: `rb-ui-parent-${Date.now()}`,
    args: [{ runbook: 'parent-call', params: { marker: 'ui-parent.txt' }, inventory: inventory(), initiator: 'bob' }],
  });
  await handle.result();
  const child = client().workflow.getHandle(`${handle.workflowId}/steps[1]@host-1`);
  const described = await child.describe();
  expect(await described.staticSummary()).toBe('child-append: sub-runbook of parent-call, step child on host-1');
  const details = (await described.staticDetails()) ?? '';
  expect(details).toContain('- **Runbook:** child\\-append');
  expect(details).toContain('- **Started by:** bob (sub\\-runbook)');
  expect(details).toContain('- word: from\\-parent');
  expect(details).toContain(`**Parent run:** ${handle.workflowId.replace(/-/g, '\\-')}, step child`);
  // And the parent's history names the child the same way.
  await page.goto(runPage(stack!.ui, handle.workflowId, handle.firstExecutionRunId, 'user-metadata'), {
    waitUntil: 'networkidle2',
  });
  await waitForTexts(page, 'page', ['child-append: sub-runbook of parent-call, step child on host-1']);
}, 120_000);

test("hostile run details rendered by the UI server's own Markdown renderer make no link, image or tag", async () => {
  const hostile = [
    '[click](http://evil.example/x)',
    '![pixel](http://evil.example/p.png)',
    '<img src=x onerror=alert(1)>',
    '<a href="http://evil.example">x</a>',
    '<script>alert(1)</script>',
    'http://evil.example/autolink https://evil.example/2 mailto:x@evil.example',
    '[ref]: http://evil.example\n[ref]',
    '{workflowId} `code` **bold** # heading\n- item\n\n| a | b |\n| - | - |',
  ].join(' ');
  const input = {
    runbook: 'x',
    params: { [hostile]: hostile, note: hostile, password: hostile },
    initiator: hostile,
    inventory: hostile,
    alert: { labels: { [hostile]: hostile } },
    windowOverride: { by: hostile, reason: hostile },
  };
  // The renderer does make links, images and raw HTML of unescaped Markdown (so the checks below can fail).
  const raw = await (await fetch(`${stack!.ui}/render?content=${encodeURIComponent(hostile)}`)).text();
  expect(raw).toMatch(/<a href="http:\/\/evil\.example\/x"/);
  expect(raw).toMatch(/<img src="http:\/\/evil\.example\/p\.png"/);
  for (const markdown of [runSummary(input), runDetails(input)]) {
    const res = await fetch(`${stack!.ui}/render?content=${encodeURIComponent(markdown)}`);
    expect(res.status).toBe(200);
    const html = (await res.text()).replace(/^[\s\S]*<main>|<\/main>[\s\S]*$/g, '');
    expect(html).not.toMatch(/<(a|img|script|iframe|h[1-6]|table|code)\b/i);
    expect(html).not.toContain('evil.example/p.png"');
    expect(html).toContain('[click](http://evil.example/x)'); // shown as text, whole
  }
});
