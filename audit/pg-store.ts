// Node side. The PostgreSQL audit store: one row per record holding the canonical JSON that was hashed, plus
// columns to find records by. Appends serialise on a transaction-scoped advisory lock, so writers on many
// workers extend one chain. UPDATE, DELETE and TRUNCATE are refused by triggers; the README shows how to give
// workers a role that may only INSERT and SELECT.
import { Pool, type PoolClient } from 'pg';
import { UserError } from '../common/errors';
import { GENESIS, chain, type AuditEntry, type AuditRecord } from './record';
import { redactUrl, serialise, serialised, type AppendResult, type AuditStore, type BrokenRow } from './backend';

export const AUDIT_TABLE = 'runbook_audit';
/** Key of the advisory lock that serialises appends (and schema creation). */
const LOCK_KEY = 0x72626175; // "rbau"

/** The schema, created on start when missing (needs CREATE on the schema; an insert-only role skips this). */
export const AUDIT_SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS ${AUDIT_TABLE} (
  seq         bigint PRIMARY KEY,
  id          text NOT NULL UNIQUE,
  time        timestamptz NOT NULL,
  kind        text NOT NULL,
  workflow_id text NOT NULL,
  run_id      text NOT NULL,
  target      text,
  hash        text NOT NULL,
  record      text NOT NULL
);
CREATE INDEX IF NOT EXISTS ${AUDIT_TABLE}_workflow ON ${AUDIT_TABLE} (workflow_id);
CREATE INDEX IF NOT EXISTS ${AUDIT_TABLE}_target ON ${AUDIT_TABLE} (target, time);
CREATE OR REPLACE FUNCTION ${AUDIT_TABLE}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit records are append-only (% refused)', TG_OP;
END $$;
CREATE OR REPLACE TRIGGER ${AUDIT_TABLE}_no_change BEFORE UPDATE OR DELETE ON ${AUDIT_TABLE}
  FOR EACH ROW EXECUTE FUNCTION ${AUDIT_TABLE}_append_only();
CREATE OR REPLACE TRIGGER ${AUDIT_TABLE}_no_truncate BEFORE TRUNCATE ON ${AUDIT_TABLE}
  FOR EACH STATEMENT EXECUTE FUNCTION ${AUDIT_TABLE}_append_only();
`;

export class PgAuditStore implements AuditStore {
  private constructor(
    private readonly pool: Pool,
    readonly description: string,
  ) {}

  static async open(url: string): Promise<PgAuditStore> {
    const pool = new Pool({ connectionString: url, max: 4, connectionTimeoutMillis: 10_000 });
    pool.on('error', () => undefined); // an idle client's connection dropped; the next query reconnects
    const store = new PgAuditStore(pool, `postgres ${redactUrl(url)}`);
    try {
      await store.ensureSchema();
    } catch (err) {
      await pool.end();
      throw new UserError(`Cannot use the PostgreSQL audit store at ${redactUrl(url)}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    return store;
  }

  /** Runs `fn` in a transaction holding the store's advisory lock (released at commit or rollback). */
  private async locked<T>(fn: (client: PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1)', [LOCK_KEY]);
      const out = await fn(client);
      await client.query('COMMIT');
      return out;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  private async ensureSchema(): Promise<void> {
    const { rows } = await this.pool.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [AUDIT_TABLE]);
    if (rows[0]?.t) return;
    await this.locked((client) => client.query(AUDIT_SCHEMA_SQL));
  }

  /** Appends from this process run in call order (the advisory lock orders processes, not calls). */
  readonly append = serialised((entries: AuditEntry[]) => this.appendLocked(entries));

  private async appendLocked(entries: AuditEntry[]): Promise<AppendResult> {
    if (entries.length === 0) return { appended: 0, duplicates: 0 };
    return this.locked(async (client) => {
      const known = await client.query<{ id: string }>(`SELECT id FROM ${AUDIT_TABLE} WHERE id = ANY($1)`, [
        entries.map((e) => e.id),
      ]);
      const skip = new Set(known.rows.map((r) => r.id));
      const last = await client.query<{ seq: string; hash: string }>(
        `SELECT seq, hash FROM ${AUDIT_TABLE} ORDER BY seq DESC LIMIT 1`,
      );
      let seq = Number(last.rows[0]?.seq ?? 0);
      let head = last.rows[0]?.hash ?? GENESIS;
      let appended = 0;
      for (const entry of entries) {
        if (skip.has(entry.id)) continue;
        skip.add(entry.id);
        const r = chain(entry, seq + 1, head);
        await client.query(
          `INSERT INTO ${AUDIT_TABLE} (seq, id, time, kind, workflow_id, run_id, target, hash, record) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)`,
          [r.seq, r.id, r.time, r.kind, r.run.workflowId, r.run.runId, r.target ?? null, r.hash, serialise(r)],
        );
        seq = r.seq;
        head = r.hash;
        appended += 1;
      }
      return { appended, duplicates: entries.length - appended };
    });
  }

  async *scan(): AsyncIterable<AuditRecord | BrokenRow> {
    let after = 0;
    let position = 0;
    for (;;) {
      const { rows } = await this.pool.query<{ seq: string; id: string; hash: string; record: string }>(
        `SELECT seq, id, hash, record FROM ${AUDIT_TABLE} WHERE seq > $1 ORDER BY seq LIMIT 1000`,
        [after],
      );
      if (rows.length === 0) return;
      for (const row of rows) {
        position += 1;
        after = Number(row.seq);
        let r: AuditRecord;
        try {
          r = JSON.parse(row.record) as AuditRecord;
        } catch (err) {
          yield {
            broken: `row seq ${row.seq} (id ${row.id}) holds invalid JSON (${(err as Error).message})`,
            position,
          };
          continue;
        }
        if (r.seq !== after || r.id !== row.id || r.hash !== row.hash) {
          yield {
            broken: `row seq ${row.seq} (id ${row.id}): its seq/id/hash columns differ from the record it holds`,
            position,
          };
          continue;
        }
        yield r;
      }
    }
  }

  async close(): Promise<void> {
    await this.append([]); // appends in flight finish first
    await this.pool.end();
  }
}
