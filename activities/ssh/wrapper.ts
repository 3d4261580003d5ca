// Node side. The remote wrapper that makes an SSH step take effect at most once. Each step has a record
// ~/.runbook/runs/KEY.* on the host, KEY derived from (workflow id, step path, target). The first attempt
// claims it (an exclusive create), starts the command in the background with output going to files (a dropped
// connection or a killed worker does not stop it: sshd signals a session's processes only when asked to), waits
// for it, and records its exit code. A retried attempt finds the record and re-attaches: it waits for the
// recorded process, or returns the recorded result, instead of starting the command a second time.
//
// A cancel kills the step's process group. sshd starts each exec in a session of its own, so the login shell
// already leads a process group that holds only this step: the runner is a plain background subshell in it (a
// fork, no exec). Where the shell does not lead its group (a ForceCommand wrapper, an unusual sshd), the runner
// is started under setsid instead, which costs two process starts.
//
// Secrets never touch the host's disk or any argv: they arrive on stdin, are exported as RB_SECRET_NAME in the
// wrapper's environment, and the command refers to them as "$RB_SECRET_NAME".
import crypto from 'node:crypto';
import { quote } from 'shell-quote';

/** Where records live on the host, under the login user's home. */
export const REMOTE_RUNS_DIR = '.runbook/runs';

/** The record key of one step on one target. */
export function stepKey(workflowId: string, stepPath: string, target: string): string {
  return crypto.createHash('sha256').update(`${workflowId}\0${stepPath}\0${target}`).digest('hex').slice(0, 32);
}

export interface WrapperOptions {
  key: string;
  /** Bytes of each stream sent back (the tail). */
  capBytes: number;
  /** Run as root (sudo) or as another user (sudo -u). */
  sudo: boolean;
  runAs?: string;
  /** Names of secrets to pass through sudo's environment. */
  secretNames: string[];
  /** Read the sudo password from RB_SUDO_PASSWORD (sudo -S) instead of requiring NOPASSWD. */
  sudoPassword: boolean;
}

/** How the runner runs the script held in $S, per privilege mode (in a subshell or an `sh -c` of its own). */
function runnerCommand(o: WrapperOptions): string {
  // The script sees the login shell's state, not the wrapper's: no `set -u`, none of its variables or functions.
  if (!o.sudo && !o.runAs) return 'set +u; unset R D CAP line v i pg c; unset -f finish launch; eval "$S"';
  const keep = o.secretNames.length ? ` --preserve-env=${o.secretNames.map((n) => `RB_SECRET_${n}`).join(',')}` : '';
  const who = o.runAs ? ` -u ${quote([o.runAs])}` : '';
  const auth = o.sudoPassword ? `printf '%s\\n' "$RB_SUDO_PASSWORD" | sudo -S -p ''` : 'sudo -n';
  return `${auth}${keep}${who} -- sh -c "$S" runbook-step`;
}

/** Escapes text for use inside a single-quoted shell string. */
function singleQuoted(text: string): string {
  return text.replace(/'/g, "'\\''");
}

/**
 * Scripts longer than this travel on stdin instead of inside the exec request. The script is quoted twice (into
 * the wrapper, then the wrapper into `sh -c`), which can quadruple quote-heavy text, and one argv string may not
 * exceed 128 KiB on Linux.
 */
export const INLINE_SCRIPT_MAX = 16 * 1024;

/**
 * The wrapper script, run by the login user's shell as the exec command. It starts as few processes as it can
 * (they are most of a step's overhead over a raw exec, and a fork of bash costs about a millisecond): the record
 * is a set of files $R/KEY.*, the claim is an O_EXCL create through the shell's noclobber (`command :` so a
 * refused create does not exit the shell, and no subshell), reads use builtins, the command runs in one
 * background subshell whose exit code the wrapper records, and the output is sent by exec'ing `tail` last.
 * The trailer on stderr carries the outcome; the exec's own exit status is `tail`'s.
 */
export function wrapperScript(o: WrapperOptions, script?: string): string {
  if (!/^[0-9a-f]{32}$/.test(o.key)) throw new Error('bad step key');
  const inline = script !== undefined && script.length <= INLINE_SCRIPT_MAX;
  return `set -u
R="$HOME/${REMOTE_RUNS_DIR}"
D="$R/${o.key}"
CAP=${Math.max(1, Math.floor(o.capBytes))}
${inline ? `S=${quote([script])}` : ''}
finish() {
  code=lost
  [ -f "$D.cancelling" ] && code=cancelled
  [ -s "$D.exit" ] && read -r code < "$D.exit"
  [ -s "$D.err" ] && tail -c $((CAP + 1)) "$D.err" >&2
  pid=-; [ -s "$D.pid" ] && read -r pid pg w < "$D.pid"
  printf '\n__RUNBOOK_WRAPPER__ mode=%s exit=%s pid=%s\n' "$1" "$code" "$pid" >&2
  [ -s "$D.out" ] && exec tail -c $((CAP + 1)) "$D.out"
  case $code in ''|*[!0-9]*) exit 255;; *) exit "$code";; esac
}
launch() {
  while IFS= read -r line && [ -n "$line" ]; do
    v=$(printf '%s' "\${line#*=}" | base64 -d) || exit 241
    export "RB_SECRET_\${line%%=*}=$v"
  done
  ${inline ? '' : 'S=$(cat)'}
  printf '%s' "$S" > "$D.cmd"
  if kill -0 -$$ 2>/dev/null; then
    ( ${runnerCommand(o)} ) > "$D.out" 2> "$D.err" < /dev/null &
    pg=$$
  else
    export S
    setsid sh -c '${singleQuoted(runnerCommand(o))}' runbook-step > "$D.out" 2> "$D.err" < /dev/null &
    pg=$!
  fi
  echo "$! $pg $$" > "$D.pid"
  wait $!
  c=$?
  # After a cancel the kill script records the outcome (a killed command's code would say less).
  [ -f "$D.cancelling" ] || echo $c > "$D.exit"
  finish ran
}
[ -d "$R" ] || mkdir -p -m 700 "$R" || exit 240
set -C
if command : 2>/dev/null > "$D.lock"; then set +C; launch; fi
set +C
i=0
while [ ! -s "$D.pid" ] && [ ! -s "$D.exit" ] && [ $i -lt 20 ]; do sleep 0.1; i=$((i+1)); done
if [ ! -s "$D.pid" ] && [ ! -s "$D.exit" ]; then
  rm -f "$D".* && (set -C; : > "$D.lock") 2>/dev/null && launch
fi
pid=0; w=0; [ -s "$D.pid" ] && read -r pid pg w < "$D.pid"
while [ ! -s "$D.exit" ] && [ -d "/proc/$pid" ]; do sleep 0.1; done
# The first wrapper records the exit code right after the command ends; give it a moment.
i=0
while [ ! -s "$D.exit" ] && [ -d "/proc/$w" ] && [ $i -lt 20 ]; do sleep 0.1; i=$((i+1)); done
finish attached
`;
}

/**
 * The exec request for a wrapper: run under /bin/sh whatever the login shell is. The exec keeps the login
 * shell's pid (and so its process group); a fork of dash costs a fraction of a fork of bash; and the command runs
 * under the same POSIX sh as it does with sudo.
 */
export function shCommand(script: string): string {
  return `exec /bin/sh -c ${quote([script])}`;
}

/** Kills the step's process group (the command and its children) and records the cancel. */
export function killScript(key: string, signal: 'TERM' | 'KILL' = 'TERM'): string {
  if (!/^[0-9a-f]{32}$/.test(key)) throw new Error('bad step key');
  return `D="$HOME/${REMOTE_RUNS_DIR}/${key}"
[ -s "$D.pid" ] || exit 0
read -r pid pg w < "$D.pid"
[ -n "$pg" ] || pg=$pid
[ -s "$D.exit" ] && exit 0
: > "$D.cancelling"
if [ -d "/proc/$pid" ]; then
  kill -${signal} -"$pg" 2>/dev/null || sudo -n kill -${signal} -- -"$pg" 2>/dev/null
  i=0; while [ -d "/proc/$pid" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
  kill -KILL -"$pg" 2>/dev/null || sudo -n kill -KILL -- -"$pg" 2>/dev/null
fi
[ -s "$D.exit" ] || echo cancelled > "$D.exit"
`;
}

/** The last N bytes of a running step's output, for progress heartbeats. */
export function tailScript(key: string, bytes: number): string {
  return `tail -c ${Math.floor(bytes)} "$HOME/${REMOTE_RUNS_DIR}/${key}.out" 2>/dev/null || true`;
}

/** Size and sha256 of a step's whole stdout (only needed when it was longer than the cap). */
export function digestScript(key: string): string {
  return `f="$HOME/${REMOTE_RUNS_DIR}/${key}.out"; printf '%s ' "$(wc -c < "$f")"; sha256sum < "$f"`;
}

/** Removes records older than `days` (run now and then per host). */
export function gcScript(days: number): string {
  return `find "$HOME/${REMOTE_RUNS_DIR}" -mindepth 1 -maxdepth 1 -type f -mtime +${Math.floor(days)} -delete 2>/dev/null || true`;
}

export interface WrapperOutcome {
  mode: 'ran' | 'attached';
  /** The command's exit code; 'cancelled' or 'lost' when it has none. */
  exit: number | 'cancelled' | 'lost';
  pid: string;
  /** stderr without the wrapper's trailer line. */
  stderr: string;
}

const TRAILER = /\n?__RUNBOOK_WRAPPER__ mode=(ran|attached) exit=(\S+) pid=(\S+)\n$/;

/** Splits the wrapper's trailer off stderr; undefined when there is none (the wrapper itself failed). */
export function parseTrailer(stderr: string): WrapperOutcome | undefined {
  const m = TRAILER.exec(stderr);
  if (!m) return undefined;
  const exit = /^\d+$/.test(m[2]!) ? Number(m[2]) : m[2] === 'cancelled' ? 'cancelled' : 'lost';
  return { mode: m[1] as 'ran' | 'attached', exit, pid: m[3]!, stderr: stderr.slice(0, m.index) };
}

/** The stdin payload: `NAME=base64(value)` lines, an empty line, then the script unless it went inline. */
export function wrapperStdin(secrets: Record<string, string>, script: string): Buffer {
  const header = Object.entries(secrets).map(([n, v]) => `${n}=${Buffer.from(v).toString('base64')}\n`).join('');
  return Buffer.from(`${header}\n${script.length > INLINE_SCRIPT_MAX ? script : ''}`);
}
