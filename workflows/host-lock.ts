// Workflow side (deterministic). Host locks: no two runs act on the same host at once. A lock is a tiny child
// workflow with the id `host-lock:HOST`; Temporal allows one running workflow per id, so starting it is the
// acquire, and a second run's start fails while the first holds it. The holder signals `release` when its
// target is done (after rollback); if the holder dies, the parent-close policy terminates the lock.
import {
  ApplicationFailure, condition, defineSignal, ParentClosePolicy, setHandler, sleep, startChild, WorkflowIdReusePolicy, type ChildWorkflowHandle,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';

export const releaseSignal = defineSignal('release');

/** The lock itself: held until released (or its parent run closes). */
export async function hostLock(holder: string): Promise<string> {
  let released = false;
  setHandler(releaseSignal, () => { released = true; });
  await condition(() => released);
  return holder;
}

export type LockPolicy = 'wait' | 'fail';

/** Acquires the host's lock: waits (polling every 2 s, `onWait` called once) or fails fast with HostLocked. */
export async function acquireHostLock(host: string, holder: string, policy: LockPolicy, onWait: () => void): Promise<ChildWorkflowHandle<typeof hostLock>> {
  let waiting = false;
  for (;;) {
    try {
      return await startChild(hostLock, {
        workflowId: `host-lock:${host}`, args: [holder],
        parentClosePolicy: ParentClosePolicy.TERMINATE, workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
      });
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      if (policy === 'fail') throw ApplicationFailure.nonRetryable(`host ${host} is locked by another run (locks.hosts: fail)`, 'HostLocked');
      if (!waiting) onWait();
      waiting = true;
      await sleep('2 seconds');
    }
  }
}

export async function releaseHostLock(lock: ChildWorkflowHandle<typeof hostLock>): Promise<void> {
  await lock.signal(releaseSignal);
  await lock.result();
}
