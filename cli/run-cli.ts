// Node side. Runs a commander program with operator-friendly failures: a UserError prints its paragraph and
// exits with its code; anything else prints one line (the stack only with RUNBOOK_DEBUG=1).
import { CommanderError, type Command } from 'commander';
import { UserError } from '../common/errors';

export async function runCli(program: Command, argv: string[]): Promise<void> {
  program.exitOverride();
  // Last resort, so no error reaches Node's default handler (a stack trace, and a status scripts misread): an error
  // nothing awaited is reported like any other. One left behind by the Temporal client after its connection closed
  // (a retry timer meeting the closed channel) comes after the command's outcome is known, and does not change it.
  let done = false;
  const stray = (err: unknown) => {
    if (done && /Channel has been shut down/i.test(err instanceof Error ? err.message : String(err))) return;
    process.exitCode = reportError(err);
    if (!done) process.exit();
  };
  process.on('uncaughtException', stray);
  process.on('unhandledRejection', stray);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    process.exitCode = reportError(err);
  } finally {
    done = true;
  }
}

export function reportError(err: unknown): number {
  if (err instanceof CommanderError) return err.exitCode; // commander already printed usage or help
  if (err instanceof UserError) {
    console.error(`runbook: ${err.message}`);
    return err.exitCode;
  }
  if (process.env.RUNBOOK_DEBUG === '1' && err instanceof Error) console.error(err.stack);
  console.error(
    `runbook: unexpected error: ${err instanceof Error ? err.message : String(err)}` +
      (process.env.RUNBOOK_DEBUG === '1' ? '' : ' (set RUNBOOK_DEBUG=1 for the stack trace)'),
  );
  return 1;
}
