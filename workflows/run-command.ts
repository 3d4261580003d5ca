// Workflow side (deterministic). Runs one ad hoc command on one inventory host through the exactly-once sshStep
// activity: the smallest end-to-end path (client -> Temporal -> worker -> SSH). The input names the host; its
// login comes from the worker's own inventory, and only a worker started with RUNBOOK_ALLOW_EXEC serves it.
import {
  ActivityFailure,
  ApplicationFailure,
  proxyActivities,
  proxyLocalActivities,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { SshStepActivityInput } from '../activities';
import type { Activities } from '../activities';
import type { SshStepResult } from '../activities/ssh/step';
import { ACTIVITY_OPTIONS, execOptions } from './activity-options';
import { RunCommandInputSchema, type RunCommandInput } from '../dsl/run-input';
import { checkRunInput } from './runbook';
import { RunbookStatus } from './search-attributes';
import { recordKey } from './steps';

export type { RunCommandInput } from '../dsl/run-input';

/** The step activity, allowed as long as the command's own timeout and then some (it kills the command then). */
const sshStepFor = (timeoutMs: number) => proxyActivities<Activities>(execOptions(timeoutMs)).sshStep;

const { prepareExec } = proxyLocalActivities<Activities>(ACTIVITY_OPTIONS.prepare);

/** Every exit code is a result here: the caller reports it. */
const ANY_EXIT = Array.from({ length: 256 }, (_, i) => i);

export async function runCommand(input: RunCommandInput): Promise<SshStepResult> {
  checkRunInput(input, RunCommandInputSchema);
  let target;
  try {
    target = await prepareExec({ host: input.host, inventory: input.inventory });
  } catch (err) {
    throw err instanceof ActivityFailure && err.cause instanceof ApplicationFailure ? err.cause : err;
  }
  upsertSearchAttributes([{ key: RunbookStatus, value: 'running' }]);
  const timeoutMs = input.timeoutMs ?? 600_000;
  const step: SshStepActivityInput = {
    target,
    action: { kind: 'ssh', command: input.command, sudo: false, env: {}, expectExit: ANY_EXIT },
    key: recordKey('exec', true),
    timeoutMs,
    // An ad hoc command is a change like any step: its activity records it.
    audit: {
      runbook: { name: 'exec', contentHash: '' },
      initiator: { trigger: 'manual', id: input.initiator ?? 'unknown' },
      key: 'exec',
      kind: 'step',
      target: input.host,
    },
  };
  const result = await sshStepFor(timeoutMs)(step);
  upsertSearchAttributes([{ key: RunbookStatus, value: result.exitCode === 0 ? 'succeeded' : 'failed' }]);
  return result;
}
