// Node side. The engine's activities, built by a factory so the worker injects real clients and tests their own.
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { Logger } from '../common/logger';
import { exec, type ExecResult } from './ssh/exec';
import { NON_RETRYABLE_SSH_ERRORS } from './ssh/errors';
import type { SshPool, SshTarget } from './ssh/pool';

export interface ActivityDeps {
  ssh: SshPool;
  logger: Logger;
}

export interface SshRunInput {
  target: SshTarget;
  command: string;
  /** @default 600000 */
  timeoutMs?: number;
}

export type SshRunResult = Pick<ExecResult, 'exitCode' | 'signal' | 'stdout' | 'stderr' | 'truncated' | 'stdoutSha256' | 'durationMs'>;

/** Heartbeat detail recorded the moment the remote command is launched. */
interface SshRunProgress { started: true }

export function createActivities({ ssh, logger }: ActivityDeps) {
  return {
    /** Runs one command on one host over a pooled SSH connection. */
    async sshRun(input: SshRunInput): Promise<SshRunResult> {
      const ctx = Context.current();
      const previous = ctx.info.heartbeatDetails as SshRunProgress | undefined;
      if (previous?.started) {
        // An earlier attempt launched the command and then lost its worker. Running it again could apply the
        // change twice, so this attempt refuses; re-attaching to the remote record is the executor's job.
        throw ApplicationFailure.nonRetryable(`The command on ${input.target.name} was already started by attempt ` +
          `${ctx.info.attempt - 1}, whose worker was lost; not running it a second time.`, 'SshCommandMayHaveRun');
      }
      const log = logger.child({ activity: 'sshRun', workflowId: ctx.info.workflowExecution?.workflowId, host: input.target.name });
      try {
        return await ssh.use(input.target, async (client) => {
          ctx.heartbeat({ started: true } satisfies SshRunProgress);
          log.info({ address: input.target.address }, 'ssh command started');
          const result = await exec(client, input.command, {
            timeoutMs: input.timeoutMs,
            signal: ctx.cancellationSignal,
            onOutput: () => ctx.heartbeat({ started: true } satisfies SshRunProgress),
          });
          log.info({ exitCode: result.exitCode, durationMs: result.durationMs }, 'ssh command finished');
          return result;
        });
      } catch (err) {
        if (err instanceof Error && (NON_RETRYABLE_SSH_ERRORS as readonly string[]).includes(err.name)) {
          throw ApplicationFailure.create({ message: err.message, type: err.name, nonRetryable: true });
        }
        throw err;
      }
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;
