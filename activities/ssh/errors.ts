// Node side. SSH failures with stable type names; the name becomes the Temporal failure type.

/** The host presented a key that known_hosts does not list (unknown) or lists differently (changed). */
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

/** Failure types an activity must not retry. */
export const NON_RETRYABLE_SSH_ERRORS = ['HostKeyError', 'SshAuthError'] as const;
