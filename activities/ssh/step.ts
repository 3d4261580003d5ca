// Node side. One SSH step on one target, exactly once: builds the command file (env, cwd, secrets by
// reference), runs it under the remote wrapper on a pooled connection, and turns the outcome into a result or a
// typed error. Secret values are resolved here, at the last moment, and redacted from everything returned.
import crypto from 'node:crypto';
import { quote } from 'shell-quote';
import { mapSecretTokens, secretsIn } from '../../dsl/expr';
import type { RenderedAction } from '../../dsl/render';
import { redact } from '../../common/redact';
import type { SecretDeclaration, Secrets } from '../secrets/providers';
import { SecretError } from '../secrets/errors';
import {
  SshCommandCancelled,
  SshCommandFailed,
  SshCommandLost,
  SshConnectionLost,
  SshInputIncomplete,
  SshWrapperError,
} from './errors';
import { exec, type ExecResult } from './exec';
import type { SshTarget } from '../../dsl/selector';
import type { SshPool } from './pool';
import {
  digestScript,
  gcScript,
  INLINE_SCRIPT_MAX,
  inputIncomplete,
  killScript,
  lineCountScript,
  parseTrailer,
  shCommand,
  stepKey,
  wrapperRequest,
  wrapperScript,
  wrapperStdin,
  type WrapperOutcome,
} from './wrapper';
import { AgentLost, idleAgent } from './agent';
import { parseProgressRead, progressScript, StreamFollower, type OutputTails } from './progress';

export type SshAction = Extract<RenderedAction, { kind: 'ssh' }>;

/** Identity of a step on a target: the record key on the host is derived from it. */
export interface SshStepKey {
  workflowId: string;
  /** The workflow run's id: a workflow id reused by a later run then never finds this run's records. */
  runId?: string;
  stepPath: string;
}

/** The record key on the host for a step on a target. */
export function stepRecordKey(key: SshStepKey, target: string): string {
  return stepKey(key.workflowId, key.stepPath, target, key.runId);
}

export interface SshStepInput {
  target: SshTarget;
  action: SshAction;
  /** Identity of the step: the record key on the host is derived from it. */
  key: SshStepKey;
  /** Declarations of the secrets the action refers to (references only, never values). */
  secrets?: Record<string, SecretDeclaration>;
  /** A declared secret holding the sudo password, when the host does not allow NOPASSWD. */
  sudoPasswordSecret?: string;
  /** @default 600000 */
  timeoutMs?: number;
  /** Bytes of each stream kept (the tail). @default 1048576 */
  maxOutputBytes?: number;
}

export interface SshStepResult {
  /** 'ran': this attempt started the command; 'attached': it found an earlier attempt's record. */
  mode: 'ran' | 'attached';
  exitCode: number;
  stdout: string;
  stderr: string;
  /** True when a stream was longer than the cap and only its tail is kept. */
  truncated: boolean;
  stdoutBytes: number;
  stdoutSha256: string | null;
  /**
   * Lines (newlines) of the whole stdout and stderr: the last line of each kept tail is line (count - 1), numbered as
   * the progress heartbeats number them (`runbook logs --follow` goes on from there). Absent in older results.
   */
  stdoutLines?: number;
  stderrLines?: number;
  durationMs: number;
}

/** A rendered command (values already quoted): each secret token becomes a quoted variable reference. */
function commandWithSecretRefs(command: string): string {
  return mapSecretTokens(command, secretRef);
}

/** A raw value (an env value): quoted, with secret tokens as variable references. */
function quotedWithSecretRefs(value: string): string {
  return value === '' ? "''" : mapSecretTokens(value, secretRef, (t) => quote([t]));
}

const secretRef = (name: string) => `"$RB_SECRET_${name}"`;

/** The command file: env exports, working directory, then the command or script. */
export function commandFile(action: SshAction): string {
  const lines: string[] = [];
  for (const [k, v] of Object.entries(action.env)) lines.push(`export ${k}=${quotedWithSecretRefs(v)}`);
  if (action.cwd !== undefined) lines.push(`cd -- ${quote([action.cwd])} || exit 1`);
  lines.push(commandWithSecretRefs(action.command ?? action.script ?? ''));
  return `${lines.join('\n')}\n`;
}

export interface SshStepHooks {
  /** Called after each read of the running command's output with its latest complete lines (see progress.ts). */
  onProgress?: (tails: OutputTails) => void;
  /** Between reads of the output. @default 5000 */
  progressIntervalMs?: number;
  /** Before the first read, so even a short step shows some output while it runs. @default 1000 */
  firstProgressMs?: number;
  /** Aborting kills the remote process group. */
  signal?: AbortSignal;
}

/** Hosts whose old step records this process has already cleaned up. */
const collected = new Set<string>();
/** Step records older than this are removed from a host the first time this process uses it. */
const RECORD_RETENTION_DAYS = 7;

export async function runSshStep(
  pool: SshPool,
  secrets: Secrets,
  input: SshStepInput,
  hooks: SshStepHooks = {},
): Promise<SshStepResult> {
  const started = Date.now();
  collectOldRecords(pool, input.target);
  const key = stepRecordKey(input.key, input.target.name);
  const script = commandFile(input.action);
  const cap = input.maxOutputBytes ?? 1024 * 1024;
  const timeoutMs = input.timeoutMs ?? 600_000;
  const resolved = await resolveSecrets(secrets, input);
  const call = wrapperCall(input, key, script, cap, resolved);
  const secretValues = [...Object.values(resolved.values), ...(resolved.sudoPassword ? [resolved.sudoPassword] : [])];
  const raw = await runWrapper(pool, input.target, key, call, timeoutMs, hooks, secretValues);
  const outcome = wrapperOutcome(raw, input.target.name);
  const result = await stepResult(pool, input.target, key, raw, outcome, cap, started);
  checkOutcome(
    input,
    outcome,
    result,
    Date.now() - started >= timeoutMs ? timeoutMs : undefined,
    hooks.signal?.aborted ?? false,
  );
  return result;
}

/** Removes step records older than the retention from a host, the first time this process uses it (in the background). */
function collectOldRecords(pool: SshPool, target: SshTarget): void {
  const hostId = `${target.user}@${target.address}:${target.port ?? 22}`;
  if (collected.has(hostId)) return;
  collected.add(hostId);
  void pool.use(target, (c) => exec(c, gcScript(RECORD_RETENTION_DAYS), { timeoutMs: 30_000 })).catch(() => undefined);
}

interface ResolvedSecrets {
  /** The secrets the command and its env refer to, in order of first use. */
  names: string[];
  /** Their values, by name. */
  values: Record<string, string>;
  sudoPassword?: string;
}

/** The values of the declared secrets the action refers to (and of the sudo password), resolved at the last moment. */
async function resolveSecrets(secrets: Secrets, input: SshStepInput): Promise<ResolvedSecrets> {
  const names = [
    ...new Set([
      ...secretsIn(input.action.command ?? input.action.script ?? ''),
      ...Object.values(input.action.env).flatMap(secretsIn),
    ]),
  ];
  const values: Record<string, string> = {};
  for (const name of names) {
    const decl = input.secrets?.[name];
    if (!decl) throw new SecretError(`secret "${name}" is used by the command but not declared`);
    values[name] = await secrets.resolve(name, decl);
  }
  let sudoPassword: string | undefined;
  if (input.sudoPasswordSecret) {
    const decl = input.secrets?.[input.sudoPasswordSecret];
    if (!decl) throw new SecretError(`sudo password secret "${input.sudoPasswordSecret}" is not declared`);
    sudoPassword = await secrets.resolve(input.sudoPasswordSecret, decl);
  }
  return { names, values, sudoPassword };
}

/** What the wrapper's run returned, over the shell agent or a plain exec. */
type WrapperRaw = Pick<ExecResult, 'stdout' | 'stderr' | 'exitCode'> & { signal?: string | null };

/** The wrapper as an exec command and as a shell-agent request, and the stdin both read (secrets, script). */
interface WrapperCall {
  remote: string;
  agentRequest: string;
  stdin: Buffer;
  inline: boolean;
  capBytes: number;
}

function wrapperCall(
  input: SshStepInput,
  key: string,
  script: string,
  capBytes: number,
  { names, values, sudoPassword }: ResolvedSecrets,
): WrapperCall {
  const opts = {
    key,
    capBytes,
    sudo: input.action.sudo,
    runAs: input.action.user,
    secretNames: names,
    sudoPassword: sudoPassword !== undefined,
  };
  // The sudo password travels on stdin too, as a first line read before the wrapper's own input.
  const withSudoPassword = (wrapper: string) =>
    sudoPassword === undefined
      ? wrapper
      : `IFS= read -r RB_SUDO_PASSWORD; RB_SUDO_PASSWORD=$(printf %s "$RB_SUDO_PASSWORD" | base64 -d); export RB_SUDO_PASSWORD\n${wrapper}`;
  const stdin =
    sudoPassword === undefined
      ? wrapperStdin(values, script)
      : Buffer.concat([Buffer.from(`${Buffer.from(sudoPassword).toString('base64')}\n`), wrapperStdin(values, script)]);
  return {
    remote: withSudoPassword(wrapperScript(opts, script)),
    agentRequest: withSudoPassword(wrapperRequest(opts, script)),
    stdin,
    inline: script.length <= INLINE_SCRIPT_MAX,
    capBytes,
  };
}

/**
 * Runs the wrapper until it reports the command's outcome: kills the command at its timeout or on abort, reports
 * the output's tail as progress, and after a kill attaches again to read the outcome the kill recorded.
 */
async function runWrapper(
  pool: SshPool,
  target: SshTarget,
  key: string,
  call: WrapperCall,
  timeoutMs: number,
  hooks: SshStepHooks,
  secretValues: string[],
): Promise<WrapperRaw> {
  let killing: Promise<unknown> | undefined;
  const kill = () => {
    killing ??= pool.use(target, (c) => exec(c, killScript(key), { timeoutMs: 15_000 })).catch(() => undefined);
  };
  const timer = setTimeout(kill, timeoutMs);
  hooks.signal?.addEventListener('abort', kill, { once: true });
  const progress = hooks.onProgress && followOutput(pool, target, key, hooks, secretValues);
  try {
    // Through the connection's shell agent when it is free (and the script is inline), else a plain exec; a
    // lost agent means the same wrapper again over exec, which re-attaches to its record.
    const run = () =>
      pool.use(target, async (client) => {
        const agent = call.inline && pool.shellAgent ? idleAgent(client) : undefined;
        if (agent) {
          try {
            return await agent.run(call.agentRequest, call.stdin, timeoutMs + 30_000);
          } catch (err) {
            if (!(err instanceof AgentLost)) throw err;
          }
        }
        return exec(client, shCommand(call.remote), {
          stdin: call.stdin,
          timeoutMs: timeoutMs + 30_000,
          maxOutputBytes: call.capBytes + 4096,
        });
      });
    const attempt = () =>
      run().catch((err: unknown) => {
        throw err instanceof SshConnectionLost ? connectionLost(target.name) : err;
      });
    let raw = await attempt();
    await killing; // a kill in progress finishes before the outcome is read
    // A kill takes the wrapper down with the command (they share the step's process group); attaching again reads
    // the outcome the kill recorded (or the exit code, when the command finished first).
    if (killing && !parseTrailer(raw.stderr)) raw = await attempt();
    return raw;
  } finally {
    clearTimeout(timer);
    progress?.stop();
    hooks.signal?.removeEventListener('abort', kill);
  }
}

/**
 * Reads the running command's new output now and then (one read at a time; a failed read is skipped) and reports
 * each stream's latest complete lines through `onProgress`.
 */
function followOutput(
  pool: SshPool,
  target: SshTarget,
  key: string,
  hooks: SshStepHooks,
  secretValues: string[],
): { stop(): void } {
  const out = new StreamFollower(secretValues);
  const err = new StreamFollower(secretValues);
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const read = async () => {
    const r = await pool
      .use(target, (c) => exec(c, progressScript(key, { out: out.position, err: err.position }), { timeoutMs: 5000 }))
      .catch(() => undefined);
    const reads = r && parseProgressRead(r.stdout);
    if (stopped || !reads) return;
    out.feed(reads.out);
    err.feed(reads.err);
    hooks.onProgress?.({ out: out.tail(), err: err.tail() });
  };
  const next = (ms: number) => {
    timer = setTimeout(() => {
      void read().finally(() => {
        if (!stopped) next(hooks.progressIntervalMs ?? 5000);
      });
    }, ms);
  };
  next(hooks.firstProgressMs ?? 1000);
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

/** The step's result: exit code, the streams' tails (redacted), and the whole stdout's size and digest. */
async function stepResult(
  pool: SshPool,
  target: SshTarget,
  key: string,
  raw: WrapperRaw,
  outcome: WrapperOutcome,
  cap: number,
  started: number,
): Promise<SshStepResult> {
  // The wrapper sends up to cap + 1 bytes per stream: one more than the cap means there was more.
  const outBuf = Buffer.from(raw.stdout, 'utf8');
  const outTruncated = outBuf.length > cap;
  const errTruncated = Buffer.byteLength(outcome.stderr) > cap;
  let stdoutBytes = outBuf.length;
  let stdoutSha256: string | null = outBuf.length ? crypto.createHash('sha256').update(outBuf).digest('hex') : null;
  if (outTruncated) {
    const d = await pool.use(target, (c) => exec(c, digestScript(key), { timeoutMs: 60_000 }));
    const [size, sha] = d.stdout.trim().split(/\s+/);
    stdoutBytes = Number(size);
    stdoutSha256 = sha ?? null;
  }
  // Lines of each stream, counted on the host when a stream was longer than what came back.
  const newlines = (text: string) => text.split('\n').length - 1;
  let lines: number[] | undefined = [newlines(raw.stdout), newlines(outcome.stderr)];
  if (outTruncated || errTruncated) {
    const n = await pool
      .use(target, (c) => exec(c, lineCountScript(key), { timeoutMs: 60_000 }))
      .then((r) => r.stdout.trim().split(/\s+/).map(Number))
      .catch(() => undefined);
    lines = n?.length === 2 && n.every(Number.isInteger) ? n : undefined;
  }
  const tail = (text: string, truncated: boolean) =>
    truncated ? Buffer.from(text).subarray(-cap).toString('utf8') : text;
  return {
    mode: outcome.mode,
    exitCode: typeof outcome.exit === 'number' ? outcome.exit : -1,
    stdout: redact(tail(raw.stdout, outTruncated)),
    stderr: redact(tail(outcome.stderr, errTruncated)),
    truncated: outTruncated || errTruncated,
    stdoutBytes,
    stdoutSha256,
    ...(lines ? { stdoutLines: lines[0], stderrLines: lines[1] } : {}),
    durationMs: Date.now() - started,
  };
}

/** Throws the typed error for an outcome that is not a success: lost, killed, or an exit code the step does not expect. */
function checkOutcome(
  input: SshStepInput,
  outcome: WrapperOutcome,
  result: SshStepResult,
  timedOutAfterMs: number | undefined,
  aborted: boolean,
): void {
  const host = input.target.name;
  if (outcome.exit === 'lost') {
    throw new SshCommandLost(
      `The command on ${host} was started (pid ${outcome.pid}) but its process is gone without ` +
        'an exit code (host rebooted or process killed outside runbook). Its effect is unknown: check the host before retrying the run.',
    );
  }
  if (outcome.exit === 'cancelled' || aborted || timedOutAfterMs !== undefined) {
    const how = aborted
      ? 'by a cancel'
      : timedOutAfterMs !== undefined
        ? `after its ${timedOutAfterMs / 1000} s timeout`
        : 'earlier (a cancel or timeout of a previous attempt)';
    throw new SshCommandCancelled(`The command on ${host} was killed ${how}.`);
  }
  if (!input.action.expectExit.includes(result.exitCode)) {
    throw Object.assign(
      new SshCommandFailed(
        `The command on ${host} exited with ${result.exitCode} ` +
          `(expected ${input.action.expectExit.join(' or ')}): ${result.stderr.trim().split('\n').slice(-3).join(' | ').slice(0, 300)}`,
      ),
      { result },
    );
  }
}

const connectionLost = (host: string) =>
  new SshConnectionLost(
    `The connection to ${host} was lost before the step reported ` +
      'its outcome. A retry re-attaches to the command (it is not run again).',
  );

/**
 * The wrapper's outcome from what its exec returned, or the error that says why there is none: the connection
 * went away first (retryable: the next attempt re-attaches), the input arrived incomplete (retryable: nothing
 * started), or the wrapper itself could not run (final).
 */
export function wrapperOutcome(
  raw: Pick<ExecResult, 'exitCode' | 'stderr'> & { signal?: string | null },
  host: string,
): WrapperOutcome {
  if (inputIncomplete(raw.exitCode, raw.stderr)) {
    throw new SshInputIncomplete(
      `The step's input reached ${host} incomplete (the connection was lost while it was sent), so ` +
        'nothing was started. A retry sends it again.',
    );
  }
  const outcome = parseTrailer(raw.stderr);
  // No exit status at all (the channel closed under it), or killed by a signal: the wrapper was cut off, not broken.
  if (!outcome && (raw.exitCode === null || (raw.signal ?? null) !== null)) throw connectionLost(host);
  // The wrapper exits with the command's code, or with tail's (0) when it sent output: anything else means the
  // output could not be read back.
  const tailFailed = outcome && typeof outcome.exit === 'number' && raw.exitCode !== 0 && raw.exitCode !== outcome.exit;
  if (!outcome || tailFailed) {
    throw new SshWrapperError(
      `The runbook wrapper could not run on ${host} (exit ${raw.exitCode}): ` +
        `${redact((outcome?.stderr ?? raw.stderr).trim()).slice(-500) || 'no output'}. The login user needs a writable home directory, a POSIX sh and coreutils.`,
    );
  }
  return outcome;
}

/**
 * Kills the remote process group of a step and records the cancel (no-op when it already finished; a step claimed
 * or arriving later never starts its command).
 */
export async function killStep(pool: SshPool, target: SshTarget, key: SshStepKey): Promise<void> {
  await pool.use(target, (c) => exec(c, killScript(stepRecordKey(key, target.name)), { timeoutMs: 15_000 }));
}
