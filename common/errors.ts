// Node side. Errors meant for an operator: one paragraph saying what is wrong and what to do.

/**
 * Thrown when input or the environment is wrong in a way the operator can fix (a port in use, a missing tool,
 * a bad file). The CLI prints `message` alone, never a stack trace, and exits with `exitCode`.
 */
export class UserError extends Error {
  /** Subclasses name themselves (`RunbookNotFoundError`), so the CLI can branch on the class, never the message. */
  override name: string = 'UserError';
  readonly exitCode: number;

  constructor(message: string, options?: { cause?: unknown; exitCode?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.exitCode = options?.exitCode ?? 2;
  }
}

/** The message of any thrown value, without its stack. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
