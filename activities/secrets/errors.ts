// Node side. Secret resolution failures; messages name the secret and the source, never the value.
import { failureClass, FAILURES } from '../../common/failure-types';

/** A secret could not be read: unset variable, missing or unsafe file, failing command. Not retryable. */
export class SecretError extends failureClass(FAILURES.secret) {}
