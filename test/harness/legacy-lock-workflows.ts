// Test harness (workflow side, bundled by test/integration/host-lock-races.test.ts for a worker of its own). What runs of
// the code before the lock manager did to lock a host: start the `hostLock` child with the id `host-lock:HOST`
// (Temporal allows one running workflow per id), hold it, and release it with its `release` signal.
import {
  condition,
  defineSignal,
  ParentClosePolicy,
  setHandler,
  startChild,
  WorkflowIdReusePolicy,
} from '@temporalio/workflow';
import { hostLock, releaseSignal } from '../../workflows/host-lock';

export { hostLock };

/** Tells `legacyHolder` to release its lock and end. */
export const letGoSignal = defineSignal('letGo');

/** Holds `host`'s old-style lock until told to let go. */
export async function legacyHolder(host: string): Promise<void> {
  let go = false;
  setHandler(letGoSignal, () => {
    go = true;
  });
  const lock = await startChild(hostLock, {
    workflowId: `host-lock:${host}`,
    args: ['legacy'],
    parentClosePolicy: ParentClosePolicy.TERMINATE,
    workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
  });
  await condition(() => go);
  await lock.signal(releaseSignal);
  await lock.result();
}
