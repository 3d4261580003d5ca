// Integration: one contract for both audit backends, the JSONL file and a real PostgreSQL server (started by the
// harness). Append and read back, idempotent ids, concurrent writers keeping one valid chain, and tampering that
// `verify` catches and names: one changed byte, one changed field, one deleted record.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';
import { FileAuditStore } from '../../audit/file-store';
import { PgAuditStore, AUDIT_TABLE } from '../../audit/pg-store';
import { recordId, type AuditEntry } from '../../audit/record';
import { query, verifyStore, type AuditStore } from '../../audit/store';
import { pgAdminUrl, pgUrl, testRoot } from '../harness/env';

function entry(run: string, n: number, over: Partial<AuditEntry> = {}): AuditEntry {
  return {
    id: recordId(run, 'r1', 'outcome', `steps[${n}]`, 'host-1'),
    time: new Date(Date.UTC(2026, 10, 22, 3, 0, n)).toISOString(),
    kind: 'step',
    run: { workflowId: run, runId: 'r1' },
    runbook: { name: 'restart-service', contentHash: 'sha256:abc' },
    initiator: { trigger: 'manual', id: 'alice' },
    step: `steps[${n}]`,
    target: 'host-1',
    action: `systemctl restart nginx # ${n}`,
    status: 'succeeded',
    exitCode: 0,
    durationMs: 12,
    output: { digest: 'sha256:00', bytes: 3, tail: 'ok\n' },
    ...over,
  };
}

/** How each backend lets a test tamper with what is stored (bypassing the store's own protections). */
interface Backend {
  name: string;
  open(): Promise<AuditStore>;
  /** A store at the same place, as another worker would open it. */
  reopen(): Promise<AuditStore>;
  flipByte(seq: number): Promise<void>;
  setField(seq: number, field: string, value: unknown): Promise<void>;
  remove(seq: number): Promise<void>;
  cleanup(): Promise<void>;
}

let n = 0;

function fileBackend(): Backend {
  const file = path.join(testRoot(), `audit-contract-${process.pid}-${++n}.jsonl`);
  const edit = (seq: number, fn: (line: string) => string | undefined) => {
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    const i = lines.findIndex((l) => l.includes(`"seq":${seq},`));
    const next = fn(lines[i]!);
    if (next === undefined) lines.splice(i, 1);
    else lines[i] = next;
    fs.writeFileSync(file, lines.join('\n'));
  };
  return {
    name: 'jsonl file',
    open: async () => new FileAuditStore(file),
    reopen: async () => new FileAuditStore(file),
    flipByte: async (seq) => edit(seq, (l) => l.replace('systemctl', 'systemctL')),
    setField: async (seq, field, value) => edit(seq, (l) => JSON.stringify({ ...JSON.parse(l), [field]: value })),
    remove: async (seq) => edit(seq, () => undefined),
    cleanup: async () => fs.rmSync(file, { force: true }),
  };
}

function pgBackend(): Backend {
  const db = `audit_contract_${process.pid}_${++n}`;
  const url = pgUrl().replace(/\/[^/]+$/, `/${db}`);
  const admin = async <T>(sql: string, params: unknown[] = [], dbUrl = url): Promise<T[]> => {
    const c = new Client({ connectionString: dbUrl });
    await c.connect();
    try {
      // Superuser tampering, as an attacker with the database's keys would: triggers are bypassed.
      if (dbUrl === url) await c.query('SET session_replication_role = replica');
      return (await c.query(sql, params)).rows as T[];
    } finally {
      await c.end();
    }
  };
  return {
    name: 'postgresql',
    open: async () => {
      await admin(`CREATE DATABASE ${db}`, [], pgAdminUrl());
      return PgAuditStore.open(url);
    },
    reopen: () => PgAuditStore.open(url),
    flipByte: async (seq) => {
      await admin(`UPDATE ${AUDIT_TABLE} SET record = replace(record, 'systemctl', 'systemctL') WHERE seq = $1`, [seq]);
    },
    setField: async (seq, field, value) => {
      const [row] = await admin<{ record: string }>(`SELECT record FROM ${AUDIT_TABLE} WHERE seq = $1`, [seq]);
      await admin(`UPDATE ${AUDIT_TABLE} SET record = $2 WHERE seq = $1`, [
        seq,
        JSON.stringify({ ...JSON.parse(row!.record), [field]: value }),
      ]);
    },
    remove: async (seq) => {
      await admin(`DELETE FROM ${AUDIT_TABLE} WHERE seq = $1`, [seq]);
    },
    cleanup: async () => {
      await admin(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`, [], pgAdminUrl());
    },
  };
}

describe.each([
  ['jsonl file', fileBackend],
  ['postgresql', pgBackend],
])('audit store contract: %s', (_name, make) => {
  let backend: Backend;
  let store: AuditStore;
  beforeEach(async () => {
    backend = make();
    store = await backend.open();
  });
  afterEach(async () => {
    await store.close();
    await backend.cleanup();
  });

  const all = async (s: AuditStore = store) => {
    const out = [];
    for await (const r of query(s)) out.push(r);
    return out;
  };

  test('appends records in order, chained, and reads them back whole', async () => {
    expect(await store.append([entry('wf-a', 1), entry('wf-a', 2)])).toEqual({ appended: 2, duplicates: 0 });
    expect(await store.append([entry('wf-a', 3)])).toEqual({ appended: 1, duplicates: 0 });
    const records = await all();
    expect(records.map((r) => [r.seq, r.step])).toEqual([
      [1, 'steps[1]'],
      [2, 'steps[2]'],
      [3, 'steps[3]'],
    ]);
    expect(records[1]!.prev).toBe(records[0]!.hash);
    expect(records[0]).toMatchObject({ ...entry('wf-a', 1), seq: 1 });
    expect(await verifyStore(store)).toMatchObject({ ok: true, records: 3, head: records[2]!.hash });
  });

  test('the same record id is stored once: a retried write is a no-op', async () => {
    await store.append([entry('wf-b', 1), entry('wf-b', 2)]);
    expect(await store.append([entry('wf-b', 2, { time: new Date().toISOString() }), entry('wf-b', 3)])).toEqual({
      appended: 1,
      duplicates: 1,
    });
    const other = await backend.reopen();
    try {
      expect(await other.append([entry('wf-b', 1)])).toEqual({ appended: 0, duplicates: 1 });
    } finally {
      await other.close();
    }
    expect((await all()).map((r) => r.step)).toEqual(['steps[1]', 'steps[2]', 'steps[3]']);
  });

  test('several writers at once keep one valid chain with every record once', async () => {
    const writers = [store, ...(await Promise.all([1, 2, 3].map(() => backend.reopen())))];
    try {
      await Promise.all(
        writers.map(async (w, i) => {
          for (let k = 0; k < 15; k++) await w.append([entry(`wf-w${i}`, k), entry(`wf-w${i}`, k + 100)]);
        }),
      );
      // Every writer also retries one write of another writer: still no duplicate.
      await Promise.all(writers.map((w, i) => w.append([entry(`wf-w${(i + 1) % 4}`, 0)])));
    } finally {
      await Promise.all(writers.slice(1).map((w) => w.close()));
    }
    const records = await all();
    expect(records).toHaveLength(4 * 15 * 2);
    expect(new Set(records.map((r) => r.id)).size).toBe(records.length);
    expect(await verifyStore(store)).toMatchObject({ ok: true, records: 120 });
  });

  describe('verify names the first bad record', () => {
    beforeEach(async () => {
      for (let i = 1; i <= 5; i++) await store.append([entry('wf-t', i)]);
      expect((await verifyStore(store)).ok).toBe(true);
    });

    test('one changed byte', async () => {
      await backend.flipByte(3);
      expect(await verifyStore(store)).toMatchObject({
        ok: false,
        records: 2,
        firstBad: {
          seq: 3,
          id: entry('wf-t', 3).id,
          problem: expect.stringMatching(/content does not match its hash/),
        },
      });
    });

    test('one changed field', async () => {
      await backend.setField(2, 'status', 'failed');
      expect(await verifyStore(store)).toMatchObject({
        ok: false,
        records: 1,
        firstBad: { seq: 2, id: entry('wf-t', 2).id },
      });
    });

    test('one deleted record', async () => {
      await backend.remove(4);
      expect(await verifyStore(store)).toMatchObject({
        ok: false,
        records: 3,
        firstBad: { seq: 5, problem: expect.stringMatching(/record 4 is missing/) },
      });
    });

    test('a record rehashed after its edit still breaks the chain at the next record', async () => {
      // A forger who recomputes the edited record's hash cannot fix the next record's prev without rewriting
      // everything after it.
      const [r2] = (await all()).filter((r) => r.seq === 2);
      const { hashRecord } = await import('../../audit/record');
      const forged = { ...r2!, status: 'failed' };
      await backend.setField(2, 'status', 'failed');
      await backend.setField(2, 'hash', hashRecord(forged));
      expect(await verifyStore(store)).toMatchObject({ ok: false, firstBad: { seq: expect.any(Number) } });
      const report = await verifyStore(store);
      expect([2, 3]).toContain(report.firstBad!.seq);
    });
  });
});

test('jsonl file: separate processes appending at once keep one valid chain', async () => {
  // Real OS processes (the compiled store from `npm run build`), as several workers on one machine would be.
  const file = path.join(testRoot(), `audit-procs-${process.pid}.jsonl`);
  const compiled = path.join(__dirname, '..', '..', 'dist', 'audit', 'file-store.js');
  expect(fs.existsSync(compiled)).toBe(true);
  const script = `
    const { FileAuditStore } = require(${JSON.stringify(compiled)});
    const { recordId } = require(${JSON.stringify(compiled.replace('file-store.js', 'record.js'))});
    const store = new FileAuditStore(${JSON.stringify(file)});
    (async () => {
      for (let i = 0; i < 40; i++) {
        const wf = 'proc-' + process.argv[1];
        await store.append([{ id: recordId(wf, 'r', String(i)), time: new Date().toISOString(), kind: 'step', run: { workflowId: wf, runId: 'r' },
          runbook: { name: 'x', contentHash: 'h' }, initiator: { trigger: 'manual', id: 't' }, step: 'steps[' + i + ']', status: 'succeeded' }]);
      }
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const codes = await Promise.all(
    [1, 2, 3].map(
      (k) =>
        new Promise<number | null>((resolve) => {
          spawn('node', ['-e', script, String(k)], { stdio: 'inherit' }).on('exit', resolve);
        }),
    ),
  );
  expect(codes).toEqual([0, 0, 0]);
  const store = new FileAuditStore(file);
  expect(await verifyStore(store)).toMatchObject({ ok: true, records: 120 });
}, 60_000);

describe('postgresql specifics', () => {
  test('UPDATE, DELETE and TRUNCATE are refused; an insert-only role can append but not change', async () => {
    const db = `audit_roles_${process.pid}`;
    const admin = new Client({ connectionString: pgAdminUrl() });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${db}`);
    await admin.query(`DROP ROLE IF EXISTS runbook_writer_${process.pid}`);
    await admin.query(`CREATE ROLE runbook_writer_${process.pid} LOGIN`);
    await admin.end();
    const ownerUrl = pgUrl().replace(/\/[^/]+$/, `/${db}`);
    const owner = await PgAuditStore.open(ownerUrl); // creates the schema
    const c = new Client({ connectionString: ownerUrl });
    await c.connect();
    try {
      await c.query(`GRANT SELECT, INSERT ON ${AUDIT_TABLE} TO runbook_writer_${process.pid}`);
      const writer = await PgAuditStore.open(ownerUrl.replace('postgres@', `runbook_writer_${process.pid}@`));
      try {
        expect(await writer.append([entry('wf-r', 1), entry('wf-r', 2)])).toEqual({ appended: 2, duplicates: 0 });
      } finally {
        await writer.close();
      }
      await expect(c.query(`UPDATE ${AUDIT_TABLE} SET kind = 'x'`)).rejects.toThrow(/append-only \(UPDATE refused\)/);
      await expect(c.query(`DELETE FROM ${AUDIT_TABLE}`)).rejects.toThrow(/append-only \(DELETE refused\)/);
      await expect(c.query(`TRUNCATE ${AUDIT_TABLE}`)).rejects.toThrow(/append-only \(TRUNCATE refused\)/);
      const w = new Client({ connectionString: ownerUrl.replace('postgres@', `runbook_writer_${process.pid}@`) });
      await w.connect();
      await expect(w.query(`DELETE FROM ${AUDIT_TABLE}`)).rejects.toThrow(/permission denied/);
      await w.end();
      expect(await verifyStore(owner)).toMatchObject({ ok: true, records: 2 });
    } finally {
      await c.end();
      await owner.close();
    }
  });

  test('a bad URL or an unreachable server is a clear error with the password masked', async () => {
    await expect(PgAuditStore.open('postgres://u:hunter22@127.0.0.1:1/x')).rejects.toThrow(
      /Cannot use the PostgreSQL audit store at postgres:\/\/u:\*\*\*@127\.0\.0\.1:1\/x: .*ECONNREFUSED/,
    );
  });
});
