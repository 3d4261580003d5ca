// Node side. The audit store contract every backend implements, and the helpers the backends share. It imports
// no backend, so the factory (store.ts) can import them all while they import only this and record.ts.
import { canonical, type AuditEntry, type AuditRecord } from './record';

export interface AppendResult {
  appended: number;
  duplicates: number;
}

/**
 * Where change records live. `append` is idempotent by record id (an entry whose id is stored is skipped) and
 * keeps the chain valid when several processes append at once.
 */
export interface AuditStore {
  readonly description: string;
  append(entries: AuditEntry[]): Promise<AppendResult>;
  /** Stored records in chain order. Raw rows that cannot be parsed come back as `{ broken }`. */
  scan(): AsyncIterable<AuditRecord | BrokenRow>;
  close(): Promise<void>;
}

/** A stored row that is not a record at all (a torn or edited line). */
export interface BrokenRow {
  broken: string;
  position: number;
}

/**
 * Makes calls of `fn` run one after another, in call order: a store's appends from one process extend the
 * chain in the order they were asked for (locks between processes do not order calls within one).
 */
export function serialised<A, R>(fn: (arg: A) => Promise<R>): (arg: A) => Promise<R> {
  let queue: Promise<unknown> = Promise.resolve();
  return (arg: A) => {
    const next = queue.then(() => fn(arg));
    queue = next.catch(() => undefined);
    return next;
  };
}

/** The stored line of a record: canonical JSON, so the bytes on disk are the bytes that were hashed. */
export function serialise(record: AuditRecord): string {
  return canonical(record);
}

/** A connection URL without its password, for messages. */
export function redactUrl(url: string): string {
  return url.replace(/(\/\/[^:/@]+):[^@/]*@/, '$1:***@');
}
