// Workflow side (deterministic). The host lock manager: one workflow per task queue (id `runbook-host-locks:QUEUE`,
// reserved) keeping the lock table of every host the runs of that queue act on (host-lock-table.ts), so the UI's
// workflow list shows one row for all locks instead of one child per host per run.
//
//   Runs send `lockRequests` (a signal; signal-with-start, activities/host-lock.ts, starts the manager) and get
//   `lockAnswers` signals back. Every
//   round applies what came in (messages, then the outcome of checks and watches), grants in FIFO order per host,
//   and starts what the table asks for: answers to runs; a check for old-style `host-lock:HOST` locks before a host
//   is first granted; a check of a holder when a fail-policy request meets it (only a live holder refuses); a watch
//   on each holder someone waits for (a holder terminated or timed out never releases: its close frees its hosts).
//   An answer that cannot be delivered (the run is gone) is no grant: the next in line gets the host.
//   A manager that starts without a carried table (the first, or one started after the last was terminated) grants
//   nothing until it has asked every open run of its queue what it holds and waits for (recoverHostLocks).
//   Past MAX_HISTORY events it continues as new with its table, once no signal it sent is in flight (the server
//   drops a signal whose sender has closed); watches are cancelled and started again by the next run. A cancel
//   request is ignored; terminating it loses only its table, which the next manager learns again from the runs.
import {
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import { Type, type Static } from '@sinclair/typebox';
import type { Activities } from '../activities';
import { FAILURES, HOST_LOCK_PREFIX, hostLockManagerId } from '../common/failure-types';
import { inputProblems } from '../dsl/run-input';
import { LOCK_OPTIONS, LOCK_WATCH_MS, lockWatchOptions } from './activity-options';
import {
  LOCK_NAMES,
  LockTable,
  LockTableStateSchema,
  requestProblems,
  runKey,
  type LockAnswer,
  type LockRequests,
  type LockTableState,
  type RunRef,
} from './host-lock-table';

const ManagerInputSchema = Type.Object(
  {
    /** Continue as new past this many history events. @default 4000 */
    historyLimit: Type.Optional(Type.Integer({ minimum: 100, maximum: 40_000 })),
    /** The table, carried over continue-as-new (ignored by a run that was not continued: it asks the runs). */
    state: Type.Optional(Type.Unknown()),
  },
  { additionalProperties: false },
);
export type LockManagerInput = Static<typeof ManagerInputSchema>;

/** Continue as new past this many events (the server suggests it too), so replays stay short. */
const MAX_HISTORY = 4000;
/** Messages kept between two rounds at most (a flood past this is dropped: runs ask again). */
const MAX_INBOX = 10_000;

export const lockRequestsSignal = defineSignal<[LockRequests]>(LOCK_NAMES.requests);
export const lockTableQuery = defineQuery<ReturnType<LockTable['view']>>(LOCK_NAMES.table);

const { checkHostLocks } = proxyActivities<Activities>(LOCK_OPTIONS.check);
const { watchLockHolder, watchHostLock } = proxyActivities<Activities>(lockWatchOptions);
const { recoverHostLocks } = proxyActivities<Activities>(LOCK_OPTIONS.recover);

export async function hostLockManager(input: LockManagerInput = {}): Promise<void> {
  const info = workflowInfo();
  const problems = inputProblems(ManagerInputSchema, input);
  if (problems.length)
    throw ApplicationFailure.create({
      type: FAILURES.inputInvalid,
      nonRetryable: true,
      message: `The lock manager input is invalid:\n${problems.join('\n')}`,
    });
  if (info.workflowId !== hostLockManagerId(info.taskQueue))
    throw ApplicationFailure.nonRetryable(
      `${info.workflowId}: the host lock manager of task queue ${info.taskQueue} has the id ${hostLockManagerId(info.taskQueue)}`,
      FAILURES.reservedId,
    );
  // Only a table this manager carried over itself is believed: one given by whoever started it could free any host.
  const carried =
    info.continuedFromExecutionRunId && !inputProblems(LockTableStateSchema, input.state).length
      ? (input.state as LockTableState)
      : undefined;
  if (input.state !== undefined && !carried) log.warn('lock table in the input ignored: this run was not continued');
  const manager = new Manager(new LockTable(carried, Date.now()), info.taskQueue);
  setHandler(lockRequestsSignal, (msg) => manager.take(msg));
  setHandler(lockTableQuery, () => manager.table.view());
  // A cancel request is ignored (the table would be lost, nothing gained): terminating ends a manager, and the next
  // one asks the runs.
  return await CancellationScope.nonCancellable(async () => {
    await manager.serve(input.historyLimit ?? MAX_HISTORY);
    await condition(allHandlersFinished);
    manager.apply(); // what came while the last handlers finished
    return await continueAsNew<typeof hostLockManager>({
      historyLimit: input.historyLimit,
      state: manager.table.carry(),
    });
  });
}

/** One run of the manager: the table, what came in, and the effects in flight. */
class Manager {
  private readonly inbox: LockRequests[] = [];
  /** Outcomes of effects, applied at the start of the next round (so the table changes in one place only). */
  private readonly results: (() => void)[] = [];
  /** Signals and checks in flight: continue-as-new waits for them (the server drops a closed sender's signal). */
  private inflight = 0;
  /** Watches and the recovery, by key: cancelled when no longer wanted and before continue-as-new. */
  private readonly scopes = new Map<string, CancellationScope>();
  /** Hosts being checked for an old-style lock. */
  private readonly checking = new Set<string>();

  constructor(
    readonly table: LockTable,
    private readonly taskQueue: string,
  ) {}

  /** The `lockRequests` signal: checked, then kept for the next round (junk is logged and dropped). */
  take(msg: unknown): void {
    const bad = requestProblems(msg);
    if (bad.length || this.inbox.length >= MAX_INBOX) {
      log.warn('ignored a lock message', { problems: bad.length ? bad.slice(0, 5) : ['too many messages'] });
      return;
    }
    this.inbox.push(msg as LockRequests);
  }

  /** Applies the messages taken since the last round. */
  apply(): void {
    for (const m of this.inbox.splice(0)) this.table.receive(m);
  }

  /** Rounds until the history is long and nothing is in flight; then the caller continues as new. */
  async serve(historyLimit: number): Promise<void> {
    // Not while it recovers: the next run would start asking the runs again from the beginning.
    const long = () =>
      !this.table.recovering && (workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > historyLimit);
    // The first round goes at once: a table carried over may owe answers, and its watches start again.
    for (let first = true; ; first = false) {
      if (!first)
        await condition(() => this.inbox.length > 0 || this.results.length > 0 || (long() && this.inflight === 0));
      for (const apply of this.results.splice(0)) apply();
      this.apply();
      if (!long()) this.round();
      else if (this.inflight === 0) {
        // Only take in what comes meanwhile: the next run answers it.
        for (const scope of this.scopes.values()) scope.cancel();
        return;
      }
    }
  }

  private round(): void {
    const { table } = this;
    if (table.recovering) {
      if (!this.scopes.has('recover'))
        this.cancellable(
          'recover',
          () => recoverHostLocks({ taskQueue: this.taskQueue }),
          (found) => {
            for (const conflict of table.adopt(found)) log.error('two runs hold one host', { conflict });
          },
        );
      return;
    }
    const plan = table.plan(this.checking);
    for (const { run, answers } of plan.answers.values()) this.send(run, answers);
    if (plan.legacyCheck.length) {
      const hosts = plan.legacyCheck;
      const done = () => hosts.forEach((h) => this.checking.delete(h));
      hosts.forEach((h) => this.checking.add(h));
      this.effect(
        checkHostLocks({ legacy: hosts }),
        (r) => {
          done();
          table.legacyChecked(hosts, r.legacyHeld, r.legacyNone, Date.now());
        },
        done,
      );
    }
    if (plan.holderCheck.length) {
      const holders = plan.holderCheck;
      this.effect(
        checkHostLocks({ holders }),
        (r) => table.holdersChecked(holders, r.closed),
        () => table.holdersChecked([], []),
      );
    }
    const wanted = new Set<string>();
    for (const holder of plan.watch) {
      const key = `holder:${runKey(holder)}`;
      wanted.add(key);
      if (!this.scopes.has(key))
        this.cancellable(
          key,
          () => watchLockHolder({ ...holder, waitMs: LOCK_WATCH_MS }),
          (r) => {
            if (r === 'closed') table.runClosed(holder);
          },
        );
    }
    for (const host of plan.legacyWatch) {
      const key = `legacy:${host}`;
      wanted.add(key);
      if (!this.scopes.has(key))
        this.cancellable(
          key,
          () => watchHostLock({ workflowId: `${HOST_LOCK_PREFIX}${host}`, waitMs: LOCK_WATCH_MS }),
          (r) => {
            if (r === 'released' || r === 'cleared') table.legacyReleased(host);
          },
        );
    }
    for (const [key, scope] of this.scopes) if (key !== 'recover' && !wanted.has(key)) scope.cancel();
  }

  /** Answers one run (one signal for all its answers of the round). Undelivered: the run is gone. */
  private send(run: RunRef, answers: LockAnswer[]): void {
    this.effect(
      getExternalWorkflowHandle(run.workflowId, run.runId).signal(LOCK_NAMES.answers, { answers }),
      () => undefined,
      (err) => {
        log.info('lock answers not delivered: the run is gone', { run, error: (err as Error).message });
        this.table.undeliverable(run, answers);
      },
    );
  }

  private effect<T>(work: Promise<T>, done: (r: T) => void, failed: (err: unknown) => void): void {
    this.inflight += 1;
    void work.then(
      (r) => {
        this.inflight -= 1;
        this.results.push(() => done(r));
      },
      (err: unknown) => {
        this.inflight -= 1;
        this.results.push(() => failed(err));
      },
    );
  }

  private cancellable<T>(key: string, work: () => Promise<T>, done: (r: T) => void): void {
    const scope = new CancellationScope();
    this.scopes.set(key, scope);
    const end = (fn: () => void) => () => {
      if (this.scopes.get(key) === scope) this.scopes.delete(key);
      fn();
    };
    void scope.run(work).then(
      (r) => this.results.push(end(() => done(r))),
      (err: unknown) =>
        this.results.push(
          end(() => {
            if (!isCancellation(err)) log.warn('lock watch failed', { key, error: (err as Error).message });
          }),
        ),
    );
  }
}
