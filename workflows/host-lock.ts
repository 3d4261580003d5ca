// Workflow side (deterministic). Host locks: no two runs act on the same host at once. A lock is a tiny child
// workflow with the id `host-lock:HOST`; Temporal allows one running workflow per id, so starting it is the
// acquire, and a second run's start fails while the first holds it. The holder signals `release` when its
// target is done (after rollback); if the holder dies, the parent-close policy terminates the lock.
//
// A waiting run does not poll by starting the child again and again (each try is about ten history events, which
// would reach the history limit in hours): one activity watches the holder and returns when it closes, so a wait
// costs a handful of events per hand-over however long it lasts. A lock is only ever a child of a run: started by
// hand it fails at once, and a workflow of any other kind squatting on a `host-lock:` id is terminated by the
// waiter (the prefix is the engine's).
import {
  ApplicationFailure,
  ChildWorkflowCancellationType,
  condition,
  defineSignal,
  log,
  ParentClosePolicy,
  patched,
  proxyActivities,
  setHandler,
  sleep,
  startChild,
  workflowInfo,
  WorkflowIdReusePolicy,
  type ChildWorkflowHandle,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { Activities } from '../activities';
import { FAILURES, HOST_LOCK_PREFIX } from '../common/failure-types';
import { LOCK_WATCH_MS, lockWatchOptions } from './activity-options';

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

/**
 * Acquires the host's lock: waits for the holder to finish (`onWait` called once) or fails fast with HostLocked.
 * With `abandonOnCancel`, cancelling the run does not cancel the lock: it is held until the target's rollback is
 * done and released then (runs started before that replay with the old behaviour).
 */
export async function acquireHostLock(
  host: string,
  holder: string,
  policy: LockPolicy,
  onWait: () => void,
  abandonOnCancel = false,
): Promise<ChildWorkflowHandle<typeof hostLock>> {
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
  }
}

/**
 * Releases a lock. Never throws: a lock that is already gone (terminated by hand, or by a starter using an
 * id-conflict policy) must not turn the end of a target, or of its rollback, into a failure of the run.
 */
export async function releaseHostLock(lock: ChildWorkflowHandle<typeof hostLock>): Promise<void> {
  try {
    await lock.signal(releaseSignal);
    await lock.result();
  } catch (err) {
    log.warn('host lock was already gone at release', { lock: lock.workflowId, error: (err as Error).message });
  }
}
