// Workflow side (deterministic). Runs one ad hoc command on one host through the exactly-once sshStep
// activity: the smallest end-to-end path (client -> Temporal -> worker -> SSH). The runbook interpreter builds
// on the same parts.
import { proxyActivities, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { SshTarget } from '../activities/ssh/pool';
import type { SshStepResult } from '../activities/ssh/step';
import { RunbookStatus } from './search-attributes';

const { sshStep } = proxyActivities<Activities>({
  startToCloseTimeout: '15 minutes',
  heartbeatTimeout: '10 seconds',
  retry: { maximumAttempts: 5, initialInterval: '1 second', nonRetryableErrorTypes: ['HostKeyError', 'SshAuthError'] },
});

export interface RunCommandInput {
  target: SshTarget;
  command: string;
  /** @default 600000 */
  timeoutMs?: number;
}

/** Every exit code is a result here: the caller reports it. */
const ANY_EXIT = Array.from({ length: 256 }, (_, i) => i);

export async function runCommand(input: RunCommandInput): Promise<SshStepResult> {
  upsertSearchAttributes([{ key: RunbookStatus, value: 'running' }]);
  const result = await sshStep({
    target: input.target,
    action: { kind: 'ssh', command: input.command, sudo: false, env: {}, expectExit: ANY_EXIT },
    key: { workflowId: workflowInfo().workflowId, stepPath: 'exec' },
    timeoutMs: input.timeoutMs,
  });
  upsertSearchAttributes([{ key: RunbookStatus, value: result.exitCode === 0 ? 'succeeded' : 'failed' }]);
  return result;
}
