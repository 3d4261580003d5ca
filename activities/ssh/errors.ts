// Node side. SSH failures with stable type names; the name becomes the Temporal failure type.
import { failureClass, FAILURES } from '../../common/failure-types';

/** The host presented a key that known_hosts does not list (unknown), lists differently (changed) or revokes. */
export class HostKeyError extends failureClass(FAILURES.hostKey) {}

/** The host refused our credentials. */
export class SshAuthError extends failureClass(FAILURES.sshAuth) {}

/** TCP or SSH transport failure (refused, reset, timed out): worth a retry. */
export class SshConnectError extends failureClass(FAILURES.sshConnect) {}

/**
 * The connection (or the exec's session) ended before the wrapper reported an outcome: the command may be running
 * or done. Worth a retry, which re-attaches to the step's record instead of running the command again.
 */
export class SshConnectionLost extends failureClass(FAILURES.sshConnectionLost) {}

/** The wrapper's input (secrets, a long script) arrived incomplete, so it claimed and started nothing. Retryable. */
export class SshInputIncomplete extends failureClass(FAILURES.sshInputIncomplete) {}

/** The command exited with a code the step does not expect. */
export class SshCommandFailed extends failureClass(FAILURES.sshCommandFailed) {}

/** The command's record exists but its process is gone without an exit code (host rebooted, killed by hand). */
export class SshCommandLost extends failureClass(FAILURES.sshCommandLost) {}

/** The command was killed by a cancel or its timeout. */
export class SshCommandCancelled extends failureClass(FAILURES.sshCommandCancelled) {}

/** The remote wrapper could not run (no writable home, missing tools): it exited without reporting an outcome. */
export class SshWrapperError extends failureClass(FAILURES.sshWrapper) {}
