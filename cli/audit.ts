// Node side. `runbook audit verify|show|export`: check the chain, read the records, hand them to an auditor.
import fs from 'node:fs';
import ms from 'ms';
import { stringify } from 'csv-stringify/sync';
import { UserError } from '../common/errors';
import type { AuditRecord } from '../audit/record';
import { openAuditStore, query, serialise, verifyStore, type AuditFilter, type AuditStore } from '../audit/store';
import { auditUrlFromEnv } from '../worker/config';

export interface AuditOptions {
  auditUrl?: string;
}

async function withStore<T>(o: AuditOptions, fn: (store: AuditStore) => Promise<T>): Promise<T> {
  const store = await openAuditStore(o.auditUrl ?? auditUrlFromEnv(), { mustExist: true });
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** Exit 0 when the chain is whole, 1 naming the first bad record otherwise. */
export async function runAuditVerify(o: AuditOptions & { json: boolean }): Promise<number> {
  return withStore(o, async (store) => {
    const report = await verifyStore(store);
    if (o.json) console.log(JSON.stringify({ store: store.description, ...report }, null, 2));
    else if (report.ok)
      console.log(`OK: ${report.records} records in ${store.description}, chain intact (head ${report.head})`);
    else {
      const b = report.firstBad!;
      console.log(
        `TAMPERED: ${store.description}: record ${b.seq}${b.id ? ` (id ${b.id})` : ''}, entry ${b.position} in the store: ${b.problem}`,
      );
      console.log(`${report.records} records before it verified.`);
    }
    return report.ok ? 0 : 1;
  });
}

export interface ShowOptions extends AuditOptions {
  run?: string;
  target?: string;
  since?: string;
  json: boolean;
  limit?: number;
}

/** `--since` as an ISO time or an age (`2h`, `7d`). */
export function parseSince(raw: string | undefined, now = Date.now()): string | undefined {
  if (raw === undefined) return undefined;
  const age = ms(raw as ms.StringValue);
  if (typeof age === 'number' && Number.isFinite(age)) return new Date(now - age).toISOString();
  const t = Date.parse(raw);
  if (Number.isNaN(t))
    throw new UserError(`--since "${raw}" is neither a time (2026-11-22T03:00:00Z) nor an age (30m, 12h, 7d).`);
  return new Date(t).toISOString();
}

const COLUMNS = [
  'time',
  'kind',
  'status',
  'runbook',
  'step',
  'target',
  'initiator',
  'exit',
  'ms',
  'action / error',
] as const;

function row(r: AuditRecord): string[] {
  return [
    r.time.replace('T', ' ').replace(/\.\d+Z$/, 'Z'),
    r.kind,
    r.status,
    r.runbook.name,
    // The step's id as the runbook names it (`restart`, `rollback:undo_a`), with its record key's attempt, poll or
    // delegated-host suffix (`flaky#2`, `poll@3`); records older than ids keep the path.
    r.stepId ? `${r.stepId}${/[#@:].*$/.exec(r.step ?? '')?.[0] ?? ''}` : (r.step ?? ''),
    r.target ?? '',
    `${r.initiator.trigger}:${r.initiator.id}`,
    String(r.exitCode ?? r.httpStatus ?? ''),
    r.durationMs === undefined ? '' : String(r.durationMs),
    oneLine(r.error ? `${r.action ? `${r.action} -- ` : ''}ERROR ${r.error}` : (r.action ?? '')),
  ];
}

function oneLine(text: string, max = 80): string {
  const t = text.replace(/\s+/g, ' ').trim();
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

export function table(rows: string[][]): string {
  const widths = COLUMNS.map((c, i) => Math.max(c.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (cells: readonly string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [fmt(COLUMNS.map((c) => c.toUpperCase())), ...rows.map(fmt)].join('\n');
}

export async function runAuditShow(o: ShowOptions): Promise<number> {
  const filter: AuditFilter = { run: o.run, target: o.target, since: parseSince(o.since) };
  return withStore(o, async (store) => {
    const records: AuditRecord[] = [];
    for await (const r of query(store, filter)) {
      records.push(r);
      if (o.limit && records.length > o.limit) records.shift();
    }
    if (o.json) console.log(JSON.stringify(records, null, 2));
    else if (records.length === 0) console.log(`no audit records match in ${store.description}`);
    else console.log(table(records.map(row)));
    return 0;
  });
}

export interface ExportOptions extends ShowOptions {
  format: string;
  output?: string;
}

const CSV_COLUMNS = [
  'seq',
  'id',
  'time',
  'kind',
  'status',
  'workflow_id',
  'run_id',
  'runbook',
  'content_hash',
  'step',
  'target',
  'trigger',
  'initiator',
  'action',
  'approvals',
  'exit_code',
  'http_status',
  'duration_ms',
  'output_digest',
  'output_tail',
  'error',
  'prev',
  'hash',
  // Added later, so at the end: readers that go by position keep working.
  'step_id',
];

/**
 * A cell a spreadsheet would read as a formula, prefixed with ' so it shows as text (OWASP "CSV Injection"): one
 * that starts with =, +, -, @ (or their full-width forms, which some spreadsheets fold), also after leading
 * whitespace, or with a tab, carriage return, line feed or NUL. Numbers stay numbers (an exit code of -1 is not
 * a formula). Records hold what hosts and operators wrote (commands, output, errors, targets), so any cell can.
 */
export function csvCell(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  return /^(?:[\t\r\n\0]|\s*[=+\-@\uFF1D\uFF0B\uFF0D\uFF20])/.test(value) ? `'${value}` : value;
}

function csvRow(r: AuditRecord): unknown[] {
  return csvFields(r).map(csvCell);
}

function csvFields(r: AuditRecord): unknown[] {
  return [
    r.seq,
    r.id,
    r.time,
    r.kind,
    r.status,
    r.run.workflowId,
    r.run.runId,
    r.runbook.name,
    r.runbook.contentHash,
    r.step,
    r.target,
    r.initiator.trigger,
    r.initiator.id,
    r.action,
    r.approvals?.map((a) => a.by).join(' '),
    r.exitCode,
    r.httpStatus,
    r.durationMs,
    r.output?.digest,
    r.output?.tail,
    r.error,
    r.prev,
    r.hash,
    r.stepId,
  ];
}

/** Every matching record as JSONL (the stored, hashed form) or CSV, to stdout or --output. */
export async function runAuditExport(o: ExportOptions): Promise<number> {
  if (o.format !== 'jsonl' && o.format !== 'csv')
    throw new UserError(`--format must be jsonl or csv, got "${o.format}".`);
  const filter: AuditFilter = { run: o.run, target: o.target, since: parseSince(o.since) };
  const out = o.output ? fs.createWriteStream(o.output) : process.stdout;
  let n = 0;
  await withStore(o, async (store) => {
    if (o.format === 'csv') out.write(stringify([CSV_COLUMNS]));
    for await (const r of query(store, filter)) {
      out.write(o.format === 'csv' ? stringify([csvRow(r)]) : `${serialise(r)}\n`);
      n += 1;
    }
  });
  if (o.output) {
    await new Promise<void>((resolve, reject) =>
      (out as fs.WriteStream).end((err?: Error | null) => (err ? reject(err) : resolve())),
    );
    console.error(`wrote ${n} records to ${o.output}`);
  }
  return 0;
}
