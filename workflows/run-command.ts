// Workflow side (deterministic). Runs one ad hoc command on one host through the sshRun activity: the
// smallest end-to-end path (client -> Temporal -> worker -> SSH). The runbook interpreter builds on the same parts.
import { proxyActivities, upsertSearchAttributes } from '@temporalio/workflow';
import type { Activities, SshRunInput, SshRunResult } from '../activities';
import { RunbookStatus } from './search-attributes';

const { sshRun } = proxyActivities<Activities>({
  startToCloseTimeout: '15 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { maximumAttempts: 3, initialInterval: '1 second', nonRetryableErrorTypes: ['HostKeyError', 'SshAuthError'] },
});

export type RunCommandInput = SshRunInput;

export async function runCommand(input: RunCommandInput): Promise<SshRunResult> {
  upsertSearchAttributes([{ key: RunbookStatus, value: 'running' }]);
  const result = await sshRun(input);
  upsertSearchAttributes([{ key: RunbookStatus, value: result.exitCode === 0 ? 'succeeded' : 'failed' }]);
  return result;
}
