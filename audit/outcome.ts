// Pure (no imports; also used by workflow code). What a change record keeps of a step's result, from an SSH
// result ({exitCode, stdout, stdoutSha256, stdoutBytes}) or an HTTP one ({status, body}) alike.

export interface StepOutcome {
  exitCode?: number;
  httpStatus?: number;
  durationMs?: number;
  stdout?: string;
  stdoutSha256?: string | null;
  stdoutBytes?: number;
  body?: string;
}

/** The outcome fields of a step result (or of the result a failure carries); undefined for none. */
export function outcomeOf(result: object | undefined): StepOutcome | undefined {
  if (!result) return undefined;
  const v = result as {
    exitCode?: number;
    status?: number;
    durationMs?: number;
    stdout?: string;
    stdoutSha256?: string | null;
    stdoutBytes?: number;
    body?: string;
  };
  return {
    exitCode: v.exitCode,
    httpStatus: v.status,
    durationMs: v.durationMs,
    stdout: v.stdout,
    stdoutSha256: v.stdoutSha256,
    stdoutBytes: v.stdoutBytes,
    body: v.body,
  };
}
