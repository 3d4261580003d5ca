// Pure (workflow-safe, and imported by activities). The host lock table the lock manager keeps
// (host-lock-manager.ts) and the messages between it and the runs (host-lock.ts).
//
//   A run asks with `lockRequests` {from, acquire: [{requestId, host, policy}], release: [{requestId, host}],
//   decline: [...]} (decline: a grant it never asked for, given back); the
//   manager answers each run with one `lockAnswers` {answers: [{requestId, host, answer}]} per round: `granted`,
//   `queued` (told once, while it waits) or `refused` (policy fail and a live holder, or the table is full). A
//   release of a request still queued withdraws it. Per host: at most one holder, then a FIFO queue. Request ids
//   are the run's (uuid4); a request id seen released is never queued again, so a late duplicate changes nothing.
//   No host is granted before it was checked for an old-style `host-lock:HOST` workflow (runs of the code before the
//   manager) and none was running. Everything from outside is checked against the schemas below and bounded.
import { Type, type Static } from '@sinclair/typebox';
import { inputProblems } from '../dsl/run-input';
import { utf8Bytes } from '../common/markdown';

/** Signal, query and workflow names, shared by the workflows and the activities that talk to them. */
export const LOCK_NAMES = {
  /** The manager's workflow type. */
  manager: 'hostLockManager',
  /** Signal to the manager: acquire and release requests of one run. */
  requests: 'lockRequests',
  /** Signal to a run: the manager's answers to its requests. */
  answers: 'lockAnswers',
  /** Query of a run: the locks it holds and waits for (a new manager asks every run this). */
  runLocks: 'hostLocks',
  /** Query of the manager: its table. */
  table: 'lockTable',
} as const;

/** The patch under which runs take their locks from the manager (its id is in a run's TemporalChangeVersion). */
export const LOCK_MANAGER_PATCH = 'host-lock-manager';

/** Requests of one signal at most (a run sends more as several signals). */
export const MAX_MESSAGES = 500;
/** Requests the table keeps at most, held and queued (it is carried over continue-as-new, so it stays small). */
export const MAX_LIVE = 4000;
/** Requests queued for one host at most. */
export const MAX_QUEUE = 1000;
/** Released request ids remembered (a late duplicate of one is ignored). */
const MAX_FINISHED = 1000;
/** Hosts remembered as checked for an old-style lock (past this the set starts again: checks cost, never harm). */
const MAX_LEGACY_CLEAR = 10_000;
/** Old-style locks are looked for until none runs anywhere, and not before the manager has run this long. */
export const LEGACY_GRACE_MS = 10 * 60_000;

const PRINTABLE = '^[^\\u0000-\\u001f\\u007f]*$';
const Id = (max: number) => Type.String({ minLength: 1, maxLength: max, pattern: PRINTABLE });
const Host = Type.String({ minLength: 1, maxLength: 255, pattern: '^[A-Za-z0-9_.:@-]+$' });
const Policy = Type.Union([Type.Literal('wait'), Type.Literal('fail')]);
const strict = { additionalProperties: false } as const;

/** Temporal run ids are UUIDs: anything else would make the manager's signal to that run a bad command. */
const RunId = Type.String({ pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$' });
export const RunRefSchema = Type.Object({ workflowId: Id(1000), runId: RunId }, strict);
export type RunRef = Static<typeof RunRefSchema>;

export const LockRequestsSchema = Type.Object(
  {
    from: RunRefSchema,
    acquire: Type.Optional(
      Type.Array(Type.Object({ requestId: Id(64), host: Host, policy: Policy }, strict), { maxItems: MAX_MESSAGES }),
    ),
    release: Type.Optional(
      Type.Array(Type.Object({ requestId: Id(64), host: Host }, strict), { maxItems: MAX_MESSAGES }),
    ),
    /** Grants the run gives back because it never asked for them (they free only that exact grant). */
    decline: Type.Optional(
      Type.Array(Type.Object({ requestId: Id(64), host: Host }, strict), { maxItems: MAX_MESSAGES }),
    ),
  },
  strict,
);
export type LockRequests = Static<typeof LockRequestsSchema>;

const LockAnswerSchema = Type.Object(
  {
    requestId: Id(64),
    host: Host,
    answer: Type.Union([Type.Literal('granted'), Type.Literal('queued'), Type.Literal('refused')]),
    reason: Type.Optional(Id(300)),
  },
  strict,
);
export type LockAnswer = Static<typeof LockAnswerSchema>;
export const LockAnswersSchema = Type.Object({ answers: Type.Array(LockAnswerSchema, { maxItems: MAX_LIVE }) }, strict);

/** A run's answer to the `hostLocks` query. */
export const RunLocksSchema = Type.Object(
  {
    held: Type.Array(Type.Object({ requestId: Id(64), host: Host }, strict), { maxItems: MAX_LIVE }),
    waiting: Type.Array(Type.Object({ requestId: Id(64), host: Host, policy: Policy, at: Type.Number() }, strict), {
      maxItems: MAX_LIVE,
    }),
  },
  strict,
);
export type RunLocks = Static<typeof RunLocksSchema>;

const RequestSchema = Type.Object({
  requestId: Id(64),
  host: Host,
  policy: Policy,
  workflowId: Id(1000),
  runId: RunId,
  /** Told `queued`. */
  told: Type.Optional(Type.Boolean()),
  /** Held by a run that did not answer a new manager (taken to hold every host it targets; see adopt). */
  unanswered: Type.Optional(Type.Boolean()),
});
type Request = Static<typeof RequestSchema> & {
  /** A fail-policy request: the holder (its request id) whose run was checked and found running. */
  holderAlive?: string;
  /** A fail-policy request whose holder is being checked. */
  checking?: boolean;
};

/** What a new manager learns from the runs (activities/host-lock.ts recoverHostLocks). */
export interface Recovered {
  /** `unanswered`: the run did not answer; it is taken to hold the host (one of its targets). */
  held: (RunRef & { requestId: string; host: string; unanswered?: boolean })[];
  waiting: (RunRef & { requestId: string; host: string; policy: 'wait' | 'fail'; at: number })[];
}

/** The table as continue-as-new carries it. */
export const LockTableStateSchema = Type.Object(
  {
    hosts: Type.Record(
      Host,
      Type.Object({
        holder: Type.Optional(RequestSchema),
        queue: Type.Array(RequestSchema, { maxItems: MAX_QUEUE }),
        legacyHeld: Type.Optional(Type.Boolean()),
        blockers: Type.Optional(Type.Array(RequestSchema, { maxItems: MAX_QUEUE })),
      }),
      { maxProperties: MAX_LIVE },
    ),
    legacyClear: Type.Array(Host, { maxItems: MAX_LEGACY_CLEAR }),
    legacyDone: Type.Boolean(),
    finished: Type.Array(Id(64), { maxItems: MAX_FINISHED }),
    /** When this manager (its first run, continue-as-new included) started. */
    since: Type.Number(),
    /** Still to learn who holds what from the runs (a manager that started without a carried table). */
    recovering: Type.Boolean(),
    /** Answers owed and not yet sent when continue-as-new came. */
    owed: Type.Array(Type.Object({ run: RunRefSchema, answer: LockAnswerSchema }), { maxItems: MAX_LIVE }),
  },
  strict,
);
export type LockTableState = Static<typeof LockTableStateSchema>;

/** The server's default limit of a workflow id, in bytes: a signal to a longer one would fail the manager's task. */
const MAX_ID_BYTES = 1000;

/** Problems of a message from outside (empty when it may be applied). */
export const requestProblems = (msg: unknown): string[] => {
  const problems = inputProblems(LockRequestsSchema, msg);
  if (!problems.length && utf8Bytes((msg as LockRequests).from.workflowId) > MAX_ID_BYTES)
    problems.push(`from.workflowId: longer than ${MAX_ID_BYTES} bytes`);
  return problems;
};

/** What the table needs done: answers to send (per run), checks to make, holders and old-style locks to watch. */
export interface Plan {
  answers: Map<string, { run: RunRef; answers: LockAnswer[] }>;
  /** Hosts to check for an old-style lock. */
  legacyCheck: string[];
  /** Holders to check (a fail-policy request waits on the answer). */
  holderCheck: RunRef[];
  /** Holders someone waits for (watch them: one that ends without releasing frees its hosts). */
  watch: RunRef[];
  /** Hosts an old-style lock holds while someone waits. */
  legacyWatch: string[];
}

export const runKey = (r: RunRef): string => `${r.workflowId}\u0000${r.runId}`;
const sameRun = (a: RunRef, b: RunRef) => a.workflowId === b.workflowId && a.runId === b.runId;
const LOCKED = (host: string) => `host ${host} is locked by another run (locks.hosts: fail)`;

interface HostEntry {
  holder?: Request;
  queue: Request[];
  /** An old-style `host-lock:HOST` workflow was found running. */
  legacyHeld?: boolean;
  /**
   * Other runs a new manager was told (or, silent, taken) to hold the host besides the holder: the host is granted
   * to no one until they have all released or closed. Two holders are a fault already; freeing the host when one
   * of them ends would make it worse.
   */
  blockers?: Request[];
}

export class LockTable {
  readonly hosts: Record<string, HostEntry>;
  private readonly legacyClear: Set<string>;
  legacyDone: boolean;
  private readonly finished: string[];
  private readonly finishedSet: Set<string>;
  readonly since: number;
  recovering: boolean;
  /** Answers owed (handed out by plan()). */
  private readonly owed: { run: RunRef; answer: LockAnswer }[];

  constructor(state: LockTableState | undefined, now: number) {
    this.hosts = state?.hosts ?? {};
    this.legacyClear = new Set(state?.legacyClear ?? []);
    this.legacyDone = state?.legacyDone ?? false;
    this.finished = [...(state?.finished ?? [])];
    this.finishedSet = new Set(this.finished);
    this.since = state?.since ?? now;
    this.recovering = state?.recovering ?? true;
    this.owed = [...(state?.owed ?? [])];
  }

  /** The table to carry over continue-as-new (checks in flight are made again by the next run). */
  carry(): LockTableState {
    const strip = (r: Request) => ({
      requestId: r.requestId,
      host: r.host,
      policy: r.policy,
      workflowId: r.workflowId,
      runId: r.runId,
      ...(r.told ? { told: true } : {}),
      ...(r.unanswered ? { unanswered: true } : {}),
    });
    const hosts: LockTableState['hosts'] = {};
    for (const [h, e] of Object.entries(this.hosts))
      hosts[h] = {
        ...(e.holder ? { holder: strip(e.holder) } : {}),
        queue: e.queue.map(strip),
        ...(e.legacyHeld ? { legacyHeld: true } : {}),
        ...(e.blockers?.length ? { blockers: e.blockers.map(strip) } : {}),
      };
    return {
      hosts,
      legacyClear: [...this.legacyClear],
      legacyDone: this.legacyDone,
      finished: [...this.finished],
      since: this.since,
      recovering: this.recovering,
      owed: this.owed.slice(0, MAX_LIVE),
    };
  }

  /** Requests held and queued. */
  get live(): number {
    let n = 0;
    for (const e of Object.values(this.hosts)) n += e.queue.length + (e.holder ? 1 : 0);
    return n;
  }

  private entry(host: string) {
    return (this.hosts[host] ??= { queue: [] });
  }

  private finish(requestId: string): void {
    if (this.finishedSet.has(requestId)) return;
    this.finished.push(requestId);
    this.finishedSet.add(requestId);
    if (this.finished.length > MAX_FINISHED) this.finishedSet.delete(this.finished.shift()!);
  }

  private owe(run: RunRef, answer: LockAnswer): void {
    this.owed.push({ run: { workflowId: run.workflowId, runId: run.runId }, answer });
  }

  /** Applies one run's message (checked already): releases first, then acquires. */
  receive(msg: LockRequests): void {
    for (const r of msg.release ?? []) this.release(msg.from, r.requestId, r.host);
    for (const r of msg.decline ?? []) this.decline(msg.from, r.requestId, r.host);
    let live = msg.acquire?.length ? this.live : 0;
    for (const a of msg.acquire ?? []) if (this.acquire({ ...a, ...msg.from }, live)) live += 1;
  }

  /** Queues a request (true), or answers it at once: asked again, or no room. */
  private acquire(req: Request, live: number): boolean {
    if (this.finishedSet.has(req.requestId)) return false;
    const e = this.hosts[req.host];
    if (e?.holder?.requestId === req.requestId) {
      // Asked again: it missed the grant? (Only its own run hears it again: a grant owed to another `from` that
      // cannot be delivered would free the holder.)
      if (sameRun(e.holder, req)) this.owe(req, { requestId: req.requestId, host: req.host, answer: 'granted' });
      return false;
    }
    if (e?.queue.some((q) => q.requestId === req.requestId)) return false;
    if (e?.blockers?.some((b) => b.requestId === req.requestId)) return false;
    if (e?.holder?.unanswered && sameRun(e.holder, req)) {
      // Taken to hold the host because it did not answer, it now asks for it: it never held it, and it was in line
      // before anyone who asked since.
      e.holder = undefined;
      e.queue.unshift(req);
      return true;
    }
    if (e?.blockers?.some((b) => b.unanswered && sameRun(b, req))) {
      e.blockers = e.blockers.filter((b) => !(b.unanswered && sameRun(b, req)));
      e.queue.unshift(req);
      return true;
    }
    if (live >= MAX_LIVE || (e?.queue.length ?? 0) >= MAX_QUEUE) {
      const reason = `host ${req.host}: too many lock requests waiting (${MAX_LIVE} in all, ${MAX_QUEUE} per host)`;
      this.owe(req, { requestId: req.requestId, host: req.host, answer: 'refused', reason });
      return false;
    }
    this.entry(req.host).queue.push(req);
    return true;
  }

  /** Releases a held lock, or withdraws a queued request, of `from`. */
  private release(from: RunRef, requestId: string, host: string): void {
    const e = this.hosts[host];
    // Remembered as released only when it is `from`'s own (or unknown here: a release that crossed a lost table):
    // a release in another run's name must not make a real request look finished.
    const others =
      e && [e.holder, ...e.queue, ...(e.blockers ?? [])].some((r) => r?.requestId === requestId && !sameRun(r, from));
    if (!others) this.finish(requestId);
    if (!e) return;
    const mine = (r: Request) => (r.requestId === requestId || !!r.unanswered) && sameRun(r, from);
    if (e.holder && mine(e.holder)) e.holder = undefined;
    else e.queue = e.queue.filter((q) => !(q.requestId === requestId && sameRun(q, from)));
    if (e.blockers) e.blockers = e.blockers.filter((b) => !mine(b));
    this.tidy(host);
  }

  /** A grant the run never asked for (someone asked in its name): freed, if it is exactly that grant. */
  private decline(from: RunRef, requestId: string, host: string): void {
    const e = this.hosts[host];
    if (!e?.holder || e.holder.requestId !== requestId || !sameRun(e.holder, from)) return;
    this.finish(requestId);
    e.holder = undefined;
    this.tidy(host);
  }

  /** A run ended (seen closed): its locks are free and its requests gone. */
  runClosed(run: RunRef): void {
    for (const [host, e] of Object.entries(this.hosts)) {
      if (e.holder && sameRun(e.holder, run)) {
        this.finish(e.holder.requestId);
        e.holder = undefined;
      }
      e.queue = e.queue.filter((q) => !sameRun(q, run));
      if (e.blockers) e.blockers = e.blockers.filter((b) => !sameRun(b, run));
      this.tidy(host);
    }
  }

  /** Answers that could not be delivered (the run is gone): an undelivered grant is no hold, a queued request is dropped. */
  undeliverable(run: RunRef, answers: LockAnswer[]): void {
    for (const a of answers) {
      const e = this.hosts[a.host];
      if (!e) continue;
      if (a.answer === 'granted' && e.holder?.requestId === a.requestId && sameRun(e.holder, run)) e.holder = undefined;
      if (a.answer === 'queued') e.queue = e.queue.filter((q) => !(q.requestId === a.requestId && sameRun(q, run)));
      this.tidy(a.host);
    }
  }

  /** The holders checked for fail-policy requests: those still running make them fail; the others are gone. */
  holdersChecked(checked: RunRef[], closed: RunRef[]): void {
    for (const run of closed) this.runClosed(run);
    const alive = checked.filter((c) => !closed.some((x) => sameRun(x, c)));
    for (const e of Object.values(this.hosts))
      for (const q of e.queue) {
        if (q.policy !== 'fail' || !q.checking) continue;
        q.checking = undefined;
        if (e.holder && alive.some((a) => sameRun(a, e.holder!))) q.holderAlive = e.holder.requestId;
      }
  }

  /** Hosts checked for an old-style lock: `held` run one; with `none`, no old-style lock runs anywhere. */
  legacyChecked(hosts: string[], held: string[], none: boolean, now: number): void {
    for (const h of hosts) {
      if (held.includes(h)) {
        this.entry(h).legacyHeld = true;
        continue;
      }
      if (this.legacyClear.size >= MAX_LEGACY_CLEAR) this.legacyClear.clear();
      this.legacyClear.add(h);
    }
    if (none && held.length === 0 && now - this.since >= LEGACY_GRACE_MS) this.legacyDone = true;
  }

  /** An old-style lock of `host` ended. */
  legacyReleased(host: string): void {
    const e = this.hosts[host];
    if (e) e.legacyHeld = undefined;
    this.legacyClear.add(host);
    this.tidy(host);
  }

  private legacyKnown(host: string): boolean {
    return this.legacyDone || this.legacyClear.has(host);
  }

  /** Takes over what the runs said when a new manager asked them: their holds, then their waits in the order they asked. */
  adopt(found: Recovered): string[] {
    const conflicts: string[] = [];
    // Runs that answered first: a silent run is only taken to hold its targets, and must not push a real holder
    // aside. A second claim of a host is kept as a blocker: the host waits for both.
    const held = [...found.held.filter((h) => !h.unanswered), ...found.held.filter((h) => h.unanswered)];
    for (const h of held) {
      if (this.finishedSet.has(h.requestId) && !h.unanswered) continue;
      const e = this.entry(h.host);
      e.queue = e.queue.filter((q) => q.requestId !== h.requestId);
      const { requestId, host, workflowId, runId } = h;
      const claim: Request = {
        requestId,
        host,
        policy: 'wait',
        workflowId,
        runId,
        ...(h.unanswered ? { unanswered: true } : {}),
      };
      if (!e.holder) e.holder = claim;
      else if (e.holder.requestId !== requestId || !sameRun(e.holder, claim)) {
        if (!h.unanswered || !e.holder.unanswered)
          conflicts.push(`${host}: ${e.holder.workflowId} and ${workflowId} both say they hold it`);
        if (
          (e.blockers ??= []).length < MAX_QUEUE &&
          !e.blockers.some((b) => b.requestId === requestId && sameRun(b, claim))
        )
          e.blockers.push(claim);
      }
    }
    const waiting = [...found.waiting].sort((a, b) => a.at - b.at);
    const front = new Map<string, Request[]>();
    for (const w of waiting) {
      if (this.finishedSet.has(w.requestId) || this.hosts[w.host]?.holder?.requestId === w.requestId) continue;
      const list = front.get(w.host) ?? [];
      list.push({ requestId: w.requestId, host: w.host, policy: w.policy, workflowId: w.workflowId, runId: w.runId });
      front.set(w.host, list);
    }
    for (const [host, list] of front) {
      const e = this.entry(host);
      const ids = new Set(list.map((r) => r.requestId));
      e.queue = [...list, ...e.queue.filter((q) => !ids.has(q.requestId))].slice(0, MAX_QUEUE);
    }
    this.recovering = false;
    return conflicts;
  }

  private tidy(host: string): void {
    const e = this.hosts[host];
    if (e && !e.holder && e.queue.length === 0 && !e.legacyHeld && !e.blockers?.length) delete this.hosts[host];
  }

  /**
   * Grants what can be granted (FIFO per host), refuses fail-policy requests that face a live holder, tells
   * waiters once that they wait, and says what to check and watch. `checking` are hosts whose old-style check
   * is in flight.
   */
  plan(checking: ReadonlySet<string>): Plan {
    const plan: Plan = { answers: new Map(), legacyCheck: [], holderCheck: [], watch: [], legacyWatch: [] };
    const holderCheck = new Map<string, RunRef>();
    const watch = new Map<string, RunRef>();
    if (!this.recovering) {
      for (const [host, e] of Object.entries(this.hosts)) {
        if (!this.legacyKnown(host) && !e.legacyHeld) {
          if (e.queue.length && !checking.has(host)) plan.legacyCheck.push(host);
          continue;
        }
        if (e.legacyHeld) {
          for (const q of e.queue.filter((r) => r.policy === 'fail')) this.refuse(q, LOCKED(host));
          e.queue = e.queue.filter((r) => r.policy !== 'fail');
          this.tellQueued(e.queue);
          if (e.queue.length) plan.legacyWatch.push(host);
          continue;
        }
        if (e.blockers?.length) {
          // Claimed by runs a new manager found (see adopt): nobody gets the host until they are all gone.
          for (const q of e.queue.filter((r) => r.policy === 'fail')) this.refuse(q, LOCKED(host));
          e.queue = e.queue.filter((r) => r.policy !== 'fail');
          this.tellQueued(e.queue);
          if (e.queue.length)
            for (const b of [...(e.holder ? [e.holder] : []), ...e.blockers])
              watch.set(runKey(b), { workflowId: b.workflowId, runId: b.runId });
          continue;
        }
        if (!e.holder && e.queue.length) {
          e.holder = e.queue.shift()!;
          this.owe(e.holder, { requestId: e.holder.requestId, host, answer: 'granted' });
        }
        const holder = e.holder;
        if (!holder) continue;
        const refused = e.queue.filter((q) => q.policy === 'fail' && q.holderAlive === holder.requestId);
        for (const q of refused) this.refuse(q, LOCKED(host));
        e.queue = e.queue.filter((q) => !refused.includes(q));
        for (const q of e.queue)
          if (q.policy === 'fail' && !q.checking && q.holderAlive !== holder.requestId) {
            q.checking = true;
            holderCheck.set(runKey(holder), { workflowId: holder.workflowId, runId: holder.runId });
          }
        this.tellQueued(e.queue);
        if (e.queue.some((q) => q.policy === 'wait'))
          watch.set(runKey(holder), { workflowId: holder.workflowId, runId: holder.runId });
      }
    }
    plan.holderCheck = [...holderCheck.values()];
    plan.watch = [...watch.values()];
    for (const { run, answer } of this.owed.splice(0)) {
      const k = runKey(run);
      const to = plan.answers.get(k) ?? { run, answers: [] };
      to.answers.push(answer);
      plan.answers.set(k, to);
    }
    return plan;
  }

  private refuse(q: Request, reason: string): void {
    this.finish(q.requestId);
    this.owe(q, { requestId: q.requestId, host: q.host, answer: 'refused', reason });
  }

  private tellQueued(queue: Request[]): void {
    for (const q of queue)
      if (q.policy === 'wait' && !q.told) {
        q.told = true;
        this.owe(q, { requestId: q.requestId, host: q.host, answer: 'queued' });
      }
  }

  /** The table for people (the manager's `lockTable` query). */
  view() {
    return {
      recovering: this.recovering,
      legacyDone: this.legacyDone,
      hosts: Object.fromEntries(
        Object.entries(this.hosts).map(([h, e]) => [
          h,
          {
            holder: e.holder ? { workflowId: e.holder.workflowId, runId: e.holder.runId } : null,
            waiting: e.queue.map((q) => ({ workflowId: q.workflowId, runId: q.runId, policy: q.policy })),
            ...(e.legacyHeld ? { legacyHeld: true } : {}),
            ...(e.blockers?.length
              ? { alsoClaimedBy: e.blockers.map((b) => ({ workflowId: b.workflowId, runId: b.runId })) }
              : {}),
          },
        ]),
      ),
    };
  }
}
