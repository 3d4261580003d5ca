// Node side. Watches a host lock for a run waiting on it (workflows/host-lock.ts): returns when the holder closes,
// so the wait costs the waiting run no history events while it lasts. A workflow squatting on a `host-lock:` id
// that is not a lock taken by a run (another type, or started by hand without a parent) is terminated.
import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import type { Logger } from '../common/logger';

export type LockWatch = 'released' | 'cleared' | 'held' | 'timeout';

export interface LockWatchInput {
  workflowId: string;
  /** Watch at most this long; 0 only checks (and clears a squatter). */
  waitMs: number;
}

const POLL_MS = 1000;
const RUNNING = temporal.api.enums.v1.WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING;

/** The lock workflow's status, type and parent, read raw: nothing in it (a memo, say) is decoded, so nothing can make it throw. */
async function describeRaw(client: Client, workflowId: string) {
  try {
    const res = await client.workflowService.describeWorkflowExecution({
      namespace: client.options.namespace,
      execution: { workflowId },
    });
    const i = res.workflowExecutionInfo;
    return {
      running: i?.status === RUNNING,
      runId: i?.execution?.runId ?? '',
      type: i?.type?.name ?? '',
      parent: i?.parentExecution?.workflowId ?? undefined,
    };
  } catch (err) {
    if ((err as { code?: number }).code === 5 /* NOT_FOUND */) return undefined;
    throw err;
  }
}

export async function watchHostLock(client: Client, logger: Logger, input: LockWatchInput): Promise<LockWatch> {
  const ctx = Context.current();
  const deadline = Date.now() + input.waitMs;
  for (;;) {
    const d = await describeRaw(client, input.workflowId);
    if (!d || !d.running) return 'released';
    if (d.type !== 'hostLock' || !d.parent) {
      const reason = `${input.workflowId} is reserved for host locks taken by runbook runs; this ${d.type} workflow was not one`;
      await client.workflow
        .getHandle(input.workflowId, d.runId)
        .terminate(reason)
        .catch((err: unknown) => {
          if (!(err instanceof WorkflowNotFoundError)) throw err;
        });
      logger.warn(
        { workflowId: input.workflowId, runId: d.runId, type: d.type, parent: d.parent ?? null },
        'terminated a workflow squatting on a host lock id',
      );
      return 'cleared';
    }
    const left = deadline - Date.now();
    if (left <= 0) return input.waitMs === 0 ? 'held' : 'timeout';
    ctx.heartbeat();
    await ctx.sleep(Math.min(POLL_MS, left)); // throws when the waiting run is cancelled
  }
}
