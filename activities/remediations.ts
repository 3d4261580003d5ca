// Node side. What became of remediation runs an alert guard no longer awaits (it continued as new since starting
// them): the ones that closed, with how they ended; the ones still running are left out.
import { WorkflowNotFoundError, type Client } from '@temporalio/client';

const STATUS: Record<string, string> = {
  COMPLETED: 'succeeded',
  FAILED: 'failed',
  CANCELLED: 'cancelled',
  TERMINATED: 'terminated',
  TIMED_OUT: 'timed-out',
  CONTINUED_AS_NEW: 'terminated',
};

export async function remediationStatus(
  client: Client,
  runs: { workflowId: string; runId?: string }[],
): Promise<{ workflowId: string; runId?: string; status: string }[]> {
  const out: { workflowId: string; runId?: string; status: string }[] = [];
  for (const r of runs.slice(0, 500)) {
    try {
      const d = await client.workflow.getHandle(r.workflowId, r.runId).describe();
      const status = d.status.name === 'RUNNING' ? undefined : (STATUS[d.status.name] ?? 'terminated');
      // A completed run says itself how it went (succeeded, degraded, or cancelled at its gate).
      const attr = (d.searchAttributes as Record<string, unknown[]>).RunbookStatus?.[0];
      if (status)
        out.push({
          ...r,
          status: status === 'succeeded' && typeof attr === 'string' && attr === 'cancelled' ? 'cancelled' : status,
        });
    } catch (err) {
      // Gone (past retention): it ended long ago.
      if (err instanceof WorkflowNotFoundError) out.push({ ...r, status: 'terminated' });
      else throw err;
    }
  }
  return out;
}
