// Node side. Runs a commander program with operator-friendly failures: a UserError prints its paragraph and
// exits with its code; anything else prints one line (the stack only with RUNBOOK_DEBUG=1).
import { CommanderError, type Command } from 'commander';
import { UserError } from '../common/errors';

export async function runCli(program: Command, argv: string[]): Promise<void> {
  program.exitOverride();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    process.exitCode = reportError(err);
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
