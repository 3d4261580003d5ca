// Node side. SSH failures with stable type names; the name becomes the Temporal failure type.

/** The host presented a key that known_hosts does not list (unknown), lists differently (changed) or revokes. */
export class HostKeyError extends Error {
  override name = 'HostKeyError' as const;
}

/** The host refused our credentials. */
export class SshAuthError extends Error {
  override name = 'SshAuthError' as const;
}

/** TCP or SSH transport failure (refused, reset, timed out): worth a retry. */
export class SshConnectError extends Error {
  override name = 'SshConnectError' as const;
}

/**
 * The connection (or the exec's session) ended before the wrapper reported an outcome: the command may be running
 * or done. Worth a retry, which re-attaches to the step's record instead of running the command again.
 */
export class SshConnectionLost extends Error {
  override name = 'SshConnectionLost' as const;
}

/** The wrapper's input (secrets, a long script) arrived incomplete, so it claimed and started nothing. Retryable. */
export class SshInputIncomplete extends Error {
  override name = 'SshInputIncomplete' as const;
}

/** The command exited with a code the step does not expect. */
export class SshCommandFailed extends Error {
  override name = 'SshCommandFailed' as const;
}

/** The command's record exists but its process is gone without an exit code (host rebooted, killed by hand). */
export class SshCommandLost extends Error {
  override name = 'SshCommandLost' as const;
}

/** The command was killed by a cancel or its timeout. */
export class SshCommandCancelled extends Error {
  override name = 'SshCommandCancelled' as const;
}

/** The remote wrapper could not run (no writable home, missing tools): it exited without reporting an outcome. */
export class SshWrapperError extends Error {
  override name = 'SshWrapperError' as const;
}

/** Failure types an activity must not retry. */
export const NON_RETRYABLE_SSH_ERRORS = ['HostKeyError', 'SshAuthError', 'SshCommandLost', 'SshCommandCancelled',
  'SshWrapperError', 'SecretError'] as const;
