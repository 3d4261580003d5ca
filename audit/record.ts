// Node side, pure (no I/O). The change record: what one audited event is, its
// deterministic id, and how records are chained (each record's hash covers the previous record's hash).
import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';

export type AuditKind =
  | 'run.started'
  | 'run.finished'
  | 'step'
  | 'rollback'
  | 'skip'
  | 'approval'
  | 'approval.decision'
  | 'cancel'
  // An alert guard's decisions (workflows/guard-state.ts): suppressed or refused alerts, resolutions, freezes and
  // resets, the circuit breaker opening and closing.
  | 'alert.suppressed'
  | 'alert.refused'
  | 'alert.resolved'
  | 'alert.control'
  | 'alert.breaker'
  // A run's change window: closed when reached (waiting or blocked), open again after a wait, overridden.
  | 'window.closed'
  | 'window.opened'
  | 'window.override';

/** Who or what started the run: an operator, an alert (fingerprint) or a schedule (id). */
export interface AuditInitiator {
  trigger: string;
  id: string;
}

/** An event to record, before the store gives it its place in the chain. */
export interface AuditEntry {
  /** Deterministic: the same event (an activity retry, a workflow replay) always gets the same id. */
  id: string;
  time: string;
  kind: AuditKind;
  run: { workflowId: string; runId: string };
  runbook: { name: string; contentHash: string };
  initiator: AuditInitiator;
  /** Step path in the runbook (steps[2], rollback[0], gate, ...), with its record key's suffixes (#attempt, @poll). */
  step?: string;
  /** The step's id as the runbook names it (`restart`; `rollback:undo_a` for a rollback step). */
  stepId?: string;
  target?: string;
  /** The rendered command or request, secrets shown as <secret:NAME>. */
  action?: string;
  /** Approvals that let this happen (or, for an approval record, the ones it collected). */
  approvals?: { by: string; comment?: string }[];
  status: string;
  exitCode?: number;
  httpStatus?: number;
  durationMs?: number;
  output?: { digest?: string; bytes?: number; tail?: string };
  error?: string;
  /** Kind-specific extras (the approver of a decision, the run result counts, ...). */
  detail?: Record<string, unknown>;
}

/** A record as stored: its place in the chain and the hash over it. */
export interface AuditRecord extends AuditEntry {
  seq: number;
  prev: string;
  hash: string;
}

/** The `prev` of the first record. */
export const GENESIS = '0'.repeat(64);

/** Record id: a hash of the parts that identify the event within the run. */
export function recordId(workflowId: string, runId: string, ...parts: string[]): string {
  return createHash('sha256')
    .update(JSON.stringify([workflowId, runId, ...parts]))
    .digest('hex')
    .slice(0, 32);
}

/** Canonical JSON (RFC 8785): the exact bytes that are hashed and stored. */
export function canonical(value: unknown): string {
  const text = canonicalize(value);
  if (text === undefined) throw new TypeError('audit record is not JSON-serialisable');
  return text;
}

/** The hash of a record: sha256 over the previous hash and the canonical record without its hash. */
export function hashRecord(record: Omit<AuditRecord, 'hash'>): string {
  const body: Record<string, unknown> = { ...record };
  delete body.hash;
  return createHash('sha256').update(record.prev).update('\n').update(canonical(body)).digest('hex');
}

/** Links an entry after `prev` (the previous record's hash) at position `seq`. */
export function chain(entry: AuditEntry, seq: number, prev: string): AuditRecord {
  const linked = dropUndefined({ ...entry, seq, prev }) as Omit<AuditRecord, 'hash'>;
  return { ...linked, hash: hashRecord(linked) };
}

/** JSON drops undefined fields; drop them before hashing so a record hashes the same after a round trip. */
function dropUndefined<T extends object>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}
