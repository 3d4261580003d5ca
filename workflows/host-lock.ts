// Workflow side (deterministic). Host locks: no two runs act on the same host at once.
//
// Since `host-lock-manager`, a run asks the lock manager of its task queue (host-lock-manager.ts, one workflow for
// every host) and holds a lock from the grant until its release, which the target sends after its rollback. The
// requests of one workflow task go out together in one signal (an activity with signal-with-start when no manager
// runs yet, or none answers), so a 50-host fan-out asks once. A run that waits is told `queued` (shown as waiting-lock) and asks
// again every LOCK_REASK_MS with the same request id (a manager started anew after the last was terminated has lost
// it; duplicates change nothing); a run cancelled while it waits withdraws (a grant that crossed the withdrawal is
// released by it). A run that ends without releasing (terminated, timed out) is seen closed by the manager's watch.
// The run answers the `hostLocks` query with what it holds and waits for: that is how a new manager learns the table.
//
// Runs recorded before the manager replay the old locks: a tiny child workflow with the id `host-lock:HOST`;
// Temporal allows one running workflow per id, so starting it was the acquire, and a second run's start failed while
// the first held it. The holder signals `release` when its target is done (after rollback); if the holder dies, the
// parent-close policy terminates the lock. A waiting run watches the holder with one activity and returns when it
// closes. A lock is only ever a child of a run: started by hand it fails at once, and a workflow of any other kind
// squatting on a `host-lock:` id is terminated by the waiter (the prefix is the engine's). Such a run, live again on
// this code, takes its next locks from the manager, and one waiting in the old loop switches to the manager after its
// watch; the manager grants no host while an old-style lock of it runs.
import {
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowCancellationType,
  condition,
  defineQuery,
  defineSignal,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  ParentClosePolicy,
  patched,
  proxyActivities,
  setHandler,
  sleep,
  startChild,
  uuid4,
  workflowInfo,
  WorkflowIdReusePolicy,
  type ChildWorkflowHandle,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { Activities } from '../activities';
import { FAILURES, HOST_LOCK_PREFIX, hostLockManagerId } from '../common/failure-types';
import { inputProblems } from '../dsl/run-input';
import { LOCK_FIRST_ANSWER_MS, LOCK_OPTIONS, LOCK_REASK_MS, LOCK_WATCH_MS, lockWatchOptions } from './activity-options';
import {
  LOCK_MANAGER_PATCH,
  LOCK_NAMES,
  LockAnswersSchema,
  MAX_MESSAGES,
  type LockAnswer,
  type LockRequests,
  type RunLocks,
} from './host-lock-table';

export const releaseSignal = defineSignal('release');

/** The lock itself: held until released (or its parent run closes). Only a run may take one. */
export async function hostLock(holder: string): Promise<string> {
  const info = workflowInfo();
  if (!info.parent) {
    throw ApplicationFailure.nonRetryable(
      `${info.workflowId} was started by hand: a host lock is only taken by a runbook run`,
      FAILURES.reservedId,
    );
  }
  let released = false;
  setHandler(releaseSignal, () => {
    released = true;
  });
  await condition(() => released);
  return holder;
}

export type LockPolicy = 'wait' | 'fail';

const { watchHostLock } = proxyActivities<Activities>(lockWatchOptions);
const { sendLockMessages } = proxyActivities<Activities>(LOCK_OPTIONS.send);

/** A lock the lock manager granted. */
export interface ManagedLock {
  kind: 'managed';
  requestId: string;
  host: string;
}

/** A held lock: the manager's, or an old-style child (runs recorded before the manager). */
export type HostLockHandle = ManagedLock | ChildWorkflowHandle<typeof hostLock>;

/**
 * Acquires the host's lock: waits for the holder to finish (`onWait` called once) or fails fast with HostLocked.
 * Cancelling the run does not give up a held lock: it is held until the target's rollback is done and released then.
 * (`holder` and `abandonOnCancel` are the old-style lock's: its input, and whether cancelling the run abandons the
 * child rather than cancelling it; runs started before that replay with the old behaviour.)
 */
export async function acquireHostLock(
  host: string,
  holder: string,
  policy: LockPolicy,
  onWait: () => void,
  abandonOnCancel = false,
): Promise<HostLockHandle> {
  if (patched(LOCK_MANAGER_PATCH)) return acquireManaged(host, policy, onWait);
  const workflowId = `${HOST_LOCK_PREFIX}${host}`;
  let waiting = false;
  for (;;) {
    try {
      return await startChild(hostLock, {
        workflowId,
        args: [holder],
        parentClosePolicy: ParentClosePolicy.TERMINATE,
        workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
        ...(abandonOnCancel ? { cancellationType: ChildWorkflowCancellationType.ABANDON } : {}),
      });
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    }
    // Runs recorded before the watch existed replay their 2 s polls.
    const watched = patched('host-lock-watch');
    if (policy === 'fail') {
      // A squatter is cleared even here: only a real holder makes a fail-fast run fail.
      if (!watched || (await watchHostLock({ workflowId, waitMs: 0 })) !== 'cleared') {
        throw ApplicationFailure.nonRetryable(
          `host ${host} is locked by another run (locks.hosts: fail)`,
          FAILURES.hostLocked,
        );
      }
      continue;
    }
    if (!waiting) onWait();
    waiting = true;
    if (watched) await watchHostLock({ workflowId, waitMs: LOCK_WATCH_MS });
    else await sleep('2 seconds');
    // A run that waited here when its worker was upgraded asks the manager from now on (it waits for this lock).
    if (patched(LOCK_MANAGER_PATCH)) return acquireManaged(host, policy, onWait);
  }
}

/**
 * Releases a lock. Never throws: a lock that is already gone (terminated by hand, or by a starter using an
 * id-conflict policy) must not turn the end of a target, or of its rollback, into a failure of the run.
 */
export async function releaseHostLock(lock: HostLockHandle): Promise<void> {
  if ('kind' in lock) return releaseManaged(lock);
  try {
    await lock.signal(releaseSignal);
    await lock.result();
  } catch (err) {
    log.warn('host lock was already gone at release', { lock: lock.workflowId, error: (err as Error).message });
  }
}

/** One request of this run to the manager, and where it stands. */
interface Asked {
  requestId: string;
  host: string;
  policy: LockPolicy;
  /** Workflow time it was asked (a new manager queues the waiting runs in this order). */
  at: number;
  state: 'asked' | 'queued' | 'granted' | 'refused' | 'withdrawn' | 'released';
  reason?: string;
}

/** Grants for requests this run does not know that it gives back, at most (a forged flood sends nothing more). */
const MAX_STRAY_GRANTS = 100;

/** This run's side of the lock manager: its requests, what is still to send, and the send in flight. */
interface LockClient {
  asked: Map<string, Asked>;
  outbox: Required<Pick<LockRequests, 'acquire' | 'release' | 'decline'>>;
  /** A send is in flight: sends go one after another, so the manager gets them in order. */
  sending: boolean;
  /** Callers whose messages are in the outbox: told when the send that carries them is done. */
  waiting: (() => void)[];
  /** The next send goes through the activity (which clears a squatter or a stuck manager), not a plain signal. */
  viaActivity: boolean;
  strayGrants: number;
}

/** Module state is per workflow execution (the SDK gives each workflow its own module instances). */
let lockClient: LockClient | undefined;

function client(): LockClient {
  if (lockClient) return lockClient;
  const c: LockClient = {
    asked: new Map(),
    outbox: { acquire: [], release: [], decline: [] },
    sending: false,
    waiting: [],
    viaActivity: false,
    strayGrants: 0,
  };
  lockClient = c;
  setHandler(answersSignal, (msg) => {
    const problems = inputProblems(LockAnswersSchema, msg);
    if (problems.length) {
      log.warn('ignored lock answers', { problems: problems.slice(0, 5) });
      return;
    }
    for (const a of msg.answers) answered(c, a);
  });
  setHandler(runLocksQuery, () => ({
    held: [...c.asked.values()]
      .filter((r) => r.state === 'granted')
      .map(({ requestId, host }) => ({ requestId, host })),
    waiting: [...c.asked.values()]
      .filter((r) => r.state === 'asked' || r.state === 'queued')
      .map(({ requestId, host, policy, at }) => ({ requestId, host, policy, at })),
  }));
  return c;
}

const answersSignal = defineSignal<[{ answers: LockAnswer[] }]>(LOCK_NAMES.answers);
const runLocksQuery = defineQuery<RunLocks>(LOCK_NAMES.runLocks);

function answered(c: LockClient, a: LockAnswer): void {
  const r = c.asked.get(a.requestId);
  if (!r || r.host !== a.host || r.state === 'released') {
    // A grant this run does not hold (a duplicate after its release, or someone else's doing): give it back, so
    // the manager does not keep the host for it.
    if (a.answer === 'granted' && (r?.host ?? a.host) === a.host && c.strayGrants++ < MAX_STRAY_GRANTS)
      void send(c, { decline: { requestId: a.requestId, host: a.host } });
    return;
  }
  if (r.state !== 'asked' && r.state !== 'queued') return; // decided already, or withdrawn (its release is sent)
  if (a.answer === 'granted') r.state = 'granted';
  else if (a.answer === 'refused') {
    r.state = 'refused';
    r.reason = a.reason;
  } else r.state = 'queued';
}

/**
 * Queues a message to the manager and returns when the send that carries it is done. A send goes at once when none
 * is in flight; what is queued meanwhile goes together when it is done. The content of each send is decided only by
 * the run's history events (a send's end is an event), never by how work within one workflow task was split into
 * activations: on replay, the SDK (core of 1.24) may hand over the results of two local activities of one task in
 * one activation where the first run had two (sdk-typescript #1744), and batching by microtasks then sent the
 * second target's release with the first's, which a replay of that run's history could not match.
 *
 * A send is a signal from the workflow (a command: its place in history is fixed). When it cannot be delivered (no
 * manager runs yet) or `viaActivity` is set (no answer came: the manager may be stuck, or a workflow of another kind
 * squats on its id), the activity sends it with signal-with-start instead. Not a local activity, for the same reason.
 */
function send(
  c: LockClient,
  msg: {
    acquire?: NonNullable<LockRequests['acquire']>[number];
    release?: NonNullable<LockRequests['release']>[number];
    decline?: NonNullable<LockRequests['decline']>[number];
  },
): Promise<void> {
  if (msg.acquire) c.outbox.acquire.push(msg.acquire);
  if (msg.release) c.outbox.release.push(msg.release);
  if (msg.decline) c.outbox.decline.push(msg.decline);
  const done = new Promise<void>((resolve) => c.waiting.push(resolve));
  if (!c.sending) flush(c);
  return done;
}

/** Sends everything in the outbox now (synchronously: the command is in this activation), then what came meanwhile. */
function flush(c: LockClient): void {
  const { outbox } = c;
  if (!outbox.acquire.length && !outbox.release.length && !outbox.decline.length) {
    c.sending = false;
    return;
  }
  c.sending = true;
  const { workflowId, runId, taskQueue } = workflowInfo();
  const message: LockRequests = { from: { workflowId, runId } };
  if (outbox.acquire.length) message.acquire = outbox.acquire.splice(0);
  if (outbox.release.length) message.release = outbox.release.splice(0);
  if (outbox.decline.length) message.decline = outbox.decline.splice(0);
  const waiting = c.waiting.splice(0);
  const manager = { workflowId: hostLockManagerId(taskQueue), taskQueue };
  const viaActivity = c.viaActivity;
  c.viaActivity = false;
  // Not cancellable: a cancelled target's withdrawal (and the other targets' requests) must still go.
  void CancellationScope.nonCancellable(async () => {
    if (!viaActivity)
      try {
        const handle = getExternalWorkflowHandle(manager.workflowId);
        for (const chunk of chunked(message)) await handle.signal(LOCK_NAMES.requests, chunk);
        return;
      } catch (err) {
        // Not delivered (no manager runs): start one. A chunk that did go is sent again, which changes nothing.
        log.info('lock requests not delivered by signal; sending with signal-with-start', {
          error: (err as Error).message,
        });
      }
    await sendLockMessages({ manager, message });
  })
    .catch((err: unknown) => log.warn('lock requests not sent', { error: (err as Error).message }))
    .then(() => {
      for (const resolve of waiting) resolve();
      flush(c);
    });
}

/** A message cut into signals of at most MAX_MESSAGES requests of each kind. */
function chunked(message: LockRequests): LockRequests[] {
  const { from, acquire = [], release = [], decline = [] } = message;
  const out: LockRequests[] = [];
  for (let i = 0; i < Math.max(release.length, acquire.length, decline.length, 1); i += MAX_MESSAGES) {
    const chunk: LockRequests = { from };
    if (release.length > i) chunk.release = release.slice(i, i + MAX_MESSAGES);
    if (decline.length > i) chunk.decline = decline.slice(i, i + MAX_MESSAGES);
    if (acquire.length > i) chunk.acquire = acquire.slice(i, i + MAX_MESSAGES);
    out.push(chunk);
  }
  return out;
}

async function acquireManaged(host: string, policy: LockPolicy, onWait: () => void): Promise<ManagedLock> {
  const c = client();
  const r: Asked = { requestId: uuid4(), host, policy, at: Date.now(), state: 'asked' };
  c.asked.set(r.requestId, r);
  const ask = () => send(c, { acquire: { requestId: r.requestId, host, policy } });
  let told = false;
  try {
    await ask();
    for (;;) {
      const decided = () => r.state === 'granted' || r.state === 'refused';
      // A manager that runs answers at once (granted or queued): no answer within LOCK_FIRST_ANSWER_MS means it is
      // stuck, squatted or gone, and the request goes again through the activity, which replaces it.
      const woke = await condition(
        () => decided() || (r.state === 'queued' && !told),
        r.state === 'asked' ? LOCK_FIRST_ANSWER_MS : LOCK_REASK_MS,
      );
      if (r.state === 'granted') return { kind: 'managed', requestId: r.requestId, host };
      if (r.state === 'refused') {
        c.asked.delete(r.requestId);
        throw ApplicationFailure.nonRetryable(
          r.reason ?? `host ${host} is locked by another run (locks.hosts: ${policy})`,
          FAILURES.hostLocked,
        );
      }
      if (r.state === 'queued' && !told) {
        told = true;
        onWait();
      } else if (!woke) {
        // No answer for a long while: a manager started anew has lost the request, or none answers.
        c.viaActivity = true;
        await ask();
      }
    }
  } catch (err) {
    if (isCancellation(err) && r.state !== 'refused') {
      // Withdraw: the manager drops the request, or releases it if its grant crossed this.
      r.state = 'withdrawn';
      await send(c, { release: { requestId: r.requestId, host } });
    }
    throw err;
  }
}

async function releaseManaged(lock: ManagedLock): Promise<void> {
  const c = client();
  const r = c.asked.get(lock.requestId);
  if (r) r.state = 'released';
  await send(c, { release: { requestId: lock.requestId, host: lock.host } });
}
