// Node side. The JSONL audit store: one canonical JSON record per line, append-only, fsync'd before an append
// returns. Several processes may append at once: each append holds a lock directory next to the file (proper-
// lockfile), reads what others appended since it last looked, then links its records after the real head.
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import lockfile from 'proper-lockfile';
import { UserError } from '../common/errors';
import { GENESIS, chain, type AuditEntry, type AuditRecord } from './record';
import { serialise, serialised, type AppendResult, type AuditStore, type BrokenRow } from './backend';

export class FileAuditStore implements AuditStore {
  readonly description: string;
  /** What this process knows of the file: how far it has read, the head, and the ids stored. */
  private seen = { offset: 0, seq: 0, head: GENESIS, ids: new Set<string>() };

  constructor(readonly file: string) {
    this.description = `file:${file}`;
    try {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.closeSync(fs.openSync(file, 'a', 0o640));
    } catch (err) {
      throw new UserError(
        `Cannot open the audit file ${file}: ${(err as Error).message}. Set AUDIT_URL=file:PATH to a writable place.`,
        { cause: err },
      );
    }
  }

  /** Appends from this process run one at a time; other processes are kept out by the lock. */
  readonly append = serialised((entries: AuditEntry[]) => this.appendLocked(entries));

  private async appendLocked(entries: AuditEntry[]): Promise<AppendResult> {
    if (entries.length === 0) return { appended: 0, duplicates: 0 };
    const release = await lockfile.lock(this.file, {
      realpath: false,
      stale: 10_000,
      retries: { retries: 200, minTimeout: 2, maxTimeout: 50, factor: 1.5 },
    });
    try {
      await this.catchUp();
      const lines: string[] = [];
      const ids = new Set<string>();
      let { seq, head } = this.seen;
      for (const entry of entries) {
        if (this.seen.ids.has(entry.id) || ids.has(entry.id)) continue;
        const record = chain(entry, seq + 1, head);
        lines.push(serialise(record) + '\n');
        ids.add(entry.id);
        seq = record.seq;
        head = record.hash;
      }
      if (lines.length > 0) {
        const text = lines.join('');
        const fh = await fs.promises.open(this.file, 'a');
        try {
          await fh.appendFile(text);
          await fh.sync();
        } finally {
          await fh.close();
        }
        this.seen.offset += Buffer.byteLength(text);
        this.seen.seq = seq;
        this.seen.head = head;
        for (const id of ids) this.seen.ids.add(id);
      }
      return { appended: lines.length, duplicates: entries.length - lines.length };
    } finally {
      await release();
    }
  }

  /** Reads the records other processes appended since this one last looked. */
  private async catchUp(): Promise<void> {
    const size = (await fs.promises.stat(this.file)).size;
    if (size < this.seen.offset) this.seen = { offset: 0, seq: 0, head: GENESIS, ids: new Set() };
    if (size === this.seen.offset) return;
    const fh = await fs.promises.open(this.file, 'r');
    try {
      const buf = Buffer.alloc(size - this.seen.offset);
      await fh.read(buf, 0, buf.length, this.seen.offset);
      const text = buf.toString('utf8');
      const end = text.lastIndexOf('\n') + 1;
      if (end < text.length) {
        // A torn last line: a writer died mid-append, before its fsync returned, so its caller will retry.
        // Cut it off so the chain continues from the last whole record.
        await fs.promises.truncate(this.file, this.seen.offset + Buffer.byteLength(text.slice(0, end)));
      }
      for (const line of text.slice(0, end).split('\n')) {
        if (!line) continue;
        let r: AuditRecord;
        try {
          r = JSON.parse(line) as AuditRecord;
        } catch {
          continue; // an edited line: `runbook audit verify` names it; appends go on after the last good record
        }
        this.seen.ids.add(r.id);
        this.seen.seq = r.seq;
        this.seen.head = r.hash;
      }
      this.seen.offset += Buffer.byteLength(text.slice(0, end));
    } finally {
      await fh.close();
    }
  }

  async *scan(): AsyncIterable<AuditRecord | BrokenRow> {
    const lines = readline.createInterface({ input: fs.createReadStream(this.file), crlfDelay: Infinity });
    let n = 0;
    for await (const line of lines) {
      n += 1;
      try {
        const r = JSON.parse(line) as AuditRecord;
        if (!r || typeof r !== 'object' || typeof r.seq !== 'number') throw new Error('not a record object');
        yield r;
      } catch (err) {
        yield { broken: `line ${n} of ${this.file} is not valid JSON (${(err as Error).message})`, position: n };
      }
    }
  }

  /** Waits for appends in flight. */
  async close(): Promise<void> {
    await this.append([]);
  }
}
