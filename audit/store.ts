// Node side. The audit store API: the backend a URL names (the contract is in backend.ts), queries, and
// verification of a whole store.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../common/errors';
import { redactUrl, type AuditStore, type BrokenRow } from './backend';
import { GENESIS, hashRecord, type AuditRecord } from './record';

export { serialise, type AppendResult, type AuditStore, type BrokenRow } from './backend';

export interface AuditFilter {
  /** A run: its workflow id or its run id. */
  run?: string;
  target?: string;
  /** ISO time: records at or after it. */
  since?: string;
}

export function isBroken(row: AuditRecord | BrokenRow): row is BrokenRow {
  return 'broken' in row;
}

export function matches(r: AuditRecord, f: AuditFilter): boolean {
  if (f.run && r.run.workflowId !== f.run && r.run.runId !== f.run) return false;
  if (f.target && r.target !== f.target) return false;
  if (f.since && r.time < f.since) return false;
  return true;
}

export async function* query(store: AuditStore, filter: AuditFilter = {}): AsyncIterable<AuditRecord> {
  for await (const row of store.scan()) if (!isBroken(row) && matches(row, filter)) yield row;
}

export interface VerifyReport {
  ok: boolean;
  records: number;
  /** The first bad record and what is wrong with it. */
  firstBad?: { seq: number; id?: string; position: number; problem: string };
  head?: string;
}

/**
 * Walks the whole chain: each record must parse, carry the next sequence number, point at the previous hash,
 * hash to its own `hash`, and have an id not seen before. Stops at the first bad record and names it.
 */
export async function verifyStore(store: AuditStore): Promise<VerifyReport> {
  let prev = GENESIS;
  let expected = 1;
  let count = 0;
  const ids = new Set<string>();
  let position = 0;
  for await (const row of store.scan()) {
    position += 1;
    const bad = (problem: string, seq = expected, id?: string): VerifyReport => ({
      ok: false,
      records: count,
      firstBad: { seq, id, position, problem },
      head: prev,
    });
    if (isBroken(row)) return bad(`not a record: ${row.broken}`);
    if (row.seq !== expected) {
      return bad(
        row.seq > expected
          ? `sequence jumps from ${expected - 1} to ${row.seq}: record ${expected}${row.seq - expected > 1 ? `..${row.seq - 1}` : ''} is missing`
          : `sequence number ${row.seq} where ${expected} was expected (a record was duplicated or reordered)`,
        row.seq,
        row.id,
      );
    }
    if (row.prev !== prev)
      return bad(
        `its prev hash does not match record ${expected - 1}'s hash: the record before it was changed or removed`,
        row.seq,
        row.id,
      );
    if (hashRecord(row) !== row.hash)
      return bad('its content does not match its hash: the record was changed', row.seq, row.id);
    if (ids.has(row.id)) return bad(`id ${row.id} appears twice`, row.seq, row.id);
    ids.add(row.id);
    prev = row.hash;
    expected += 1;
    count += 1;
  }
  return { ok: true, records: count, head: prev };
}

/** `file:PATH` (relative to the working directory) or `postgres://...` (AUDIT_URL, read in worker/config.ts). */
export async function openAuditStore(url: string, opts: { mustExist?: boolean } = {}): Promise<AuditStore> {
  if (url.startsWith('file:')) {
    const { FileAuditStore } = await import('./file-store');
    const file = path.resolve(url.slice('file:'.length).replace(/^\/\/(?=\/)/, ''));
    if (opts.mustExist && !fs.existsSync(file)) {
      throw new UserError(
        `No audit file at ${file}. Point --audit-url or AUDIT_URL at the store the workers write (runbook dev writes DATA_DIR/audit.jsonl).`,
      );
    }
    return new FileAuditStore(file);
  }
  if (url.startsWith('postgres:') || url.startsWith('postgresql:')) {
    const { PgAuditStore } = await import('./pg-store');
    return PgAuditStore.open(url);
  }
  throw new UserError(
    `AUDIT_URL "${redactUrl(url)}" is not supported: use file:PATH (a JSONL file) or postgres://USER@HOST:PORT/DB.`,
  );
}
