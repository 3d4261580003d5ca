// Node side. What the screenshots (scripts/ui-screenshots.ts) and the Web UI test (test/integration/ui.test.ts) share:
// a real `runbook dev` stack (dev server with its Web UI, worker) on a fleet's inventory, the story run they show
// (test/fixtures/runbooks/ui-story.yaml: a step group, a secret, a retried step, an approval per host, rolling
// batches), and headless Chromium driving the UI's pages. Chromium is Debian's (/usr/bin/chromium, or
// RUNBOOK_CHROMIUM), driven by puppeteer-core, which never downloads a browser.
//
// The UI (2.42) shows a run's summary, details and current details as Markdown in frames of its own (/render),
// and activity summaries as text in the history and in "Events with Metadata"; the helpers below read both.
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Client, WorkflowHandle, WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import puppeteer, { type Browser, type Frame, type Page } from 'puppeteer-core';
import { freePort } from '../common/ports';
import { runDetails, runSummary } from '../common/run-metadata';
import { loadRunbookFile } from '../dsl/load';
import type { RunbookInput } from '../dsl/run-input';
import { decideSignal, stateQuery, type RunState } from '../workflows/messages';
import type { runbook } from '../workflows/runbook';

/** The repository's root: this file runs from scripts/ under jest, and from dist/scripts/ once built. */
export const REPO =
  path.basename(path.dirname(__dirname)) === 'dist' ? path.join(__dirname, '..', '..') : path.join(__dirname, '..');
export const FIXTURE_RUNBOOKS = path.join(REPO, 'test', 'fixtures', 'runbooks');
const runbookBin = path.join(REPO, 'bin', 'runbook.js');

/** The secret the story's `restart` step uses: it must never appear on any page. */
export const STORY_SECRET = 'ui-story-secret-value-5f3a9c';

/** Where Chromium is: RUNBOOK_CHROMIUM, else Debian's. Throws, saying how to get it, when it is not there. */
export function chromiumPath(): string {
  const bin = process.env.RUNBOOK_CHROMIUM ?? '/usr/bin/chromium';
  if (!fs.existsSync(bin))
    throw new Error(
      `Chromium is not at ${bin}: install Debian's package (apt-get install chromium; .ci/run does) or set ` +
        'RUNBOOK_CHROMIUM to a Chromium binary. puppeteer-core drives it and never downloads a browser.',
    );
  return bin;
}

/** Headless Chromium. As root it runs without its sandbox (it refuses to start otherwise); it only loads our UI. */
export function launchChromium(): Promise<Browser> {
  return puppeteer.launch({
    executablePath: chromiumPath(),
    headless: true,
    timeout: 60_000,
    args: [...(process.getuid?.() === 0 ? ['--no-sandbox'] : []), '--disable-dev-shm-usage', '--disable-gpu'],
  });
}

export interface DevStack {
  /** The dev server's gRPC address. */
  address: string;
  /** The Web UI's base URL. */
  ui: string;
  child: ChildProcess;
  output(): string;
  /** Ctrl-C, as an operator stops it; resolves once it exited. */
  stop(): Promise<void>;
}

/**
 * Starts `runbook dev` (server, UI, worker; no alert receiver, no metrics port) on free ports, serving the fixture
 * runbooks on `inventory`; resolves once its worker polls. With `codecKeys` (RUNBOOK_CODEC_KEYS) history is
 * encrypted and the UI decrypts through the stack's codec server.
 */
export async function startDevStack(opts: {
  dataDir: string;
  inventory: string;
  codecKeys?: string;
  env?: NodeJS.ProcessEnv;
}): Promise<DevStack> {
  const port = await freePort();
  const uiPort = await freePort();
  const codec = opts.codecKeys ? ['--codec-port', String(await freePort())] : [];
  const child = spawn(
    process.execPath,
    [
      runbookBin,
      'dev',
      '--data-dir',
      opts.dataDir,
      '--port',
      String(port),
      '--ui-port',
      String(uiPort),
      '--no-receiver',
      ...codec,
    ],
    {
      env: {
        ...process.env,
        TEMPORAL_ADDRESS: undefined,
        RUNBOOK_DIR: FIXTURE_RUNBOOKS,
        RUNBOOK_INVENTORY: opts.inventory,
        RUNBOOK_INVENTORIES: opts.inventory,
        RUNBOOK_METRICS_ADDRESS: 'off',
        RB_UI_STORY_TOKEN: STORY_SECRET,
        RUNBOOK_CODEC_KEYS: opts.codecKeys,
        RUNBOOK_CODEC_KEYS_FILE: undefined,
        LOG_LEVEL: 'warn',
        ...opts.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const output = () => out;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
    await exited;
  };
  const deadline = Date.now() + 180_000;
  while (!out.includes('Worker       polling')) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`runbook dev did not start (its worker never polled); its output:\n${out.slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { address: `127.0.0.1:${port}`, ui: `http://127.0.0.1:${uiPort}`, child, output, stop };
}

/**
 * Starts the story run as a starter does: staticSummary and staticDetails from common/run-metadata.ts, with the
 * runbook known (its param types say which params are secret).
 */
export async function startStoryRun(
  client: Client,
  opts: { inventory: string; marker?: string; taskQueue?: string },
): Promise<WorkflowHandleWithFirstExecutionRunId<typeof runbook>> {
  const doc = loadRunbookFile(path.join(FIXTURE_RUNBOOKS, 'ui-story.yaml')).runbook!;
  const input: RunbookInput = {
    runbook: 'ui-story',
    params: { service: 'nginx', marker: opts.marker ?? `ui-${crypto.randomUUID().slice(0, 6)}.txt` },
    inventory: opts.inventory,
    initiator: 'alice',
    trigger: 'manual',
  };
  return client.workflow.start<typeof runbook>('runbook', {
    taskQueue: opts.taskQueue ?? 'runbooks',
    workflowId: `rb-ui-story-${crypto.randomUUID().slice(0, 8)}`,
    args: [input],
    staticSummary: runSummary(input, doc),
    staticDetails: runDetails(input, doc),
  });
}

/** Polls the run's state until `pred` holds; throws, with the last state, after `timeoutMs`. */
export async function waitForState(
  handle: WorkflowHandle,
  pred: (s: RunState) => boolean,
  what: string,
  timeoutMs = 60_000,
): Promise<RunState> {
  const deadline = Date.now() + timeoutMs;
  let last: RunState | undefined;
  for (;;) {
    last = await handle.query(stateQuery).catch(() => last);
    if (last && pred(last)) return last;
    if (Date.now() > deadline)
      throw new Error(
        `${handle.workflowId}: ${what} did not happen in ${timeoutMs} ms; last state: ${JSON.stringify(last)}`,
      );
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Approves every pending approval of the run as `alice` until the run ends; resolves with its final state. */
export async function approveUntilDone(handle: WorkflowHandle, timeoutMs = 120_000): Promise<RunState> {
  const sent = new Set<string>();
  const done = (s: RunState) => ['succeeded', 'failed', 'cancelled', 'blocked'].includes(s.status);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await waitForState(
      handle,
      (x) => done(x) || x.pendingApprovals.some((p) => !sent.has(p.id)),
      'an approval or the end',
      Math.max(1000, deadline - Date.now()),
    );
    if (done(s)) return s;
    for (const p of s.pendingApprovals.filter((x) => !sent.has(x.id))) {
      sent.add(p.id);
      await handle.signal(decideSignal, { id: p.id, approve: true, by: 'alice', comment: 'looks healthy' });
    }
  }
}

/** The URL of a run's page: a tab such as `history` or `user-metadata`. */
export function runPage(ui: string, workflowId: string, runId: string, tab: string): string {
  return `${ui}/namespaces/default/workflows/${encodeURIComponent(workflowId)}/${runId}/${tab}`;
}

/** Page scripts are strings: this project compiles without the DOM's types. */
const BODY_TEXT = 'document.body.innerText';

/** The visible text of the page and of every Markdown frame in it. */
async function pageTexts(page: Page): Promise<{ page: string; frames: string[] }> {
  const frames: Frame[] = page.frames().filter((f) => f.url().includes('/render'));
  return {
    page: String(await page.evaluate(BODY_TEXT)),
    frames: await Promise.all(frames.map((f) => f.evaluate(BODY_TEXT).then(String, () => ''))),
  };
}

/**
 * Waits until the page (`where: 'page'`) or one of its Markdown frames (`'frame'`) shows every text in `texts`
 * (each a string or a pattern). Throws after `timeoutMs` naming what is missing and what the page showed.
 */
export async function waitForTexts(
  page: Page,
  where: 'page' | 'frame',
  texts: (string | RegExp)[],
  timeoutMs = 30_000,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  const has = (t: string, x: string | RegExp) => (typeof x === 'string' ? t.includes(x) : x.test(t));
  let seen: string[] = [];
  for (;;) {
    const t = await pageTexts(page).catch(() => ({ page: '', frames: [] as string[] }));
    seen = where === 'page' ? [t.page] : t.frames;
    const hit = seen.find((s) => texts.every((x) => has(s, x)));
    if (hit !== undefined) return hit;
    if (Date.now() > deadline) {
      const best = seen.reduce(
        (a, b) => (texts.filter((x) => has(b, x)).length > texts.filter((x) => has(a, x)).length ? b : a),
        seen[0] ?? '',
      );
      const missing = texts.filter((x) => !has(best, x)).map(String);
      throw new Error(
        `${page.url()}: the ${where === 'page' ? 'page' : 'Markdown frames'} never showed ${missing.join(', ')} within ${timeoutMs} ms; ` +
          `${where === 'page' ? 'it' : `${seen.length} frame(s); the closest`} showed:\n${best.slice(0, 3000)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** Throws when the page or one of its Markdown frames shows `text` (a secret's value). */
export async function assertNotShown(page: Page, text: string): Promise<void> {
  const t = await pageTexts(page);
  const html = await page.content();
  if ([t.page, ...t.frames, html].some((s) => s.includes(text)))
    throw new Error(`${page.url()} shows ${JSON.stringify(text)}, which it must never show`);
}

/**
 * Sizes the UI's Markdown frames to their content. UI 2.42 sizes each from its body's scrollHeight once, which
 * leaves out the last line or so of longer details; screenshots show them whole.
 */
export async function fitFrames(page: Page): Promise<void> {
  await page.evaluate(`for (const f of document.querySelectorAll('iframe'))
    if (f.contentDocument) f.height = (f.contentDocument.documentElement.scrollHeight + 8) + 'px';`);
}
