// Node side. Secret resolution failures; messages name the secret and the source, never the value.

/** A secret could not be read: unset variable, missing or unsafe file, failing command. Not retryable. */
export class SecretError extends Error {
  override name = 'SecretError' as const;
}
