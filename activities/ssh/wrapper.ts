// Node side. The remote wrapper that makes an SSH step take effect at most once. Each step has a record
// ~/.runbook/runs/KEY.* on the host, KEY derived from (workflow id, run id, step path, target).
//
// 1. Input first. The wrapper's stdin (secret values, and the script when too long to go inline) starts with a
//    header "RB1 BYTES SHA256" for the rest. Until all of it has arrived intact nothing is claimed or started: a
//    short input (connection or worker lost while sending it) ends with the trailer `input=incomplete`, exit 242.
// 2. Claim. An attempt announces itself in KEY.claimPID (pid, boot id, start time), then creates KEY.lock exclusively
//    (noclobber) on fd 9, which it keeps open, and writes the same identity into it; a loser empties its KEY.claimPID.
//    The runner it forks writes KEY.pid (its pid, group and start time, the wrapper's pid and start time, the boot
//    id) before the command starts, then closes fd 9. A later attempt that finds the lock and no KEY.pid waits while
//    the claimer lives (or, while the lock is still empty, any announced contender), or any process has the lock
//    open; only when that is provably over does it claim the next generation KEY.lockN (exclusive: one taker wins).
// 3. Run. The command runs in the background with its output going to files (a dropped connection or a killed
//    worker does not stop it: sshd signals a session's processes only when asked to); the wrapper waits for it and
//    records its exit code in KEY.exit.
// 4. Attach. A retried attempt finds the record and waits for the recorded process, or returns the recorded
//    result, instead of starting the command again. A pid is trusted only with its boot id and start time
//    (/proc/PID/stat field 22): after a reboot or a pid reuse the command is reported lost, and a cancel signals
//    nothing.
//
// A cancel kills the step's process group, which must hold this step alone. An sshd exec gives the login shell a
// session of its own, and the shell agent serves each request from a shell in a new session: there the runner is
// a plain background subshell in that group (a fork, no exec). Where the shell does not lead a group (a
// ForceCommand wrapper, an unusual sshd) the runner is started under setsid instead, which costs two process starts.
//
// Secrets never touch the host's disk or any argv: they arrive on stdin, are exported as RB_SECRET_NAME in the
// wrapper's environment, and the command refers to them as "$RB_SECRET_NAME".
import crypto from 'node:crypto';
import { quote } from 'shell-quote';

/** Where records live on the host, under the login user's home. */
export const REMOTE_RUNS_DIR = '.runbook/runs';

/**
 * The record key of one step on one target. With a run id (recommended) a workflow id reused by a later run gets
 * records of its own; without one the key is the one earlier versions derived, so runs in flight re-attach.
 */
export function stepKey(workflowId: string, stepPath: string, target: string, runId?: string): string {
  const identity = runId ? `${workflowId}\0${runId}\0${stepPath}\0${target}` : `${workflowId}\0${stepPath}\0${target}`;
  return crypto.createHash('sha256').update(identity).digest('hex').slice(0, 32);
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

/** The wrapper's own shell variables and functions, which the command must not see. */
const WRAPPER_VARS =
  'R D K CAP RUN SIN BOOT RB_START RUNNER_PLAIN h n sum b ok nl line v c Wp Ws k g claimed r s p sp sz sg ss hp hb hs f pid pg w pb ps ws i code';
const WRAPPER_FUNCS = 'st alive claim held incomplete finish launch main';

/**
 * The runner's first lines: it records itself in KEY.pid (pid, group and start time from /proc/self/stat, with the
 * wrapper's pid, the boot id and the wrapper's start time), lets go of the lock (fd 9), and starts nothing when a
 * cancel came first.
 */
const RUNNER_RECORD =
  'read -r s < /proc/self/stat; p=${s%% *}; s=${s##*) }; set -- $s; echo "$p $3 $Wp $BOOT ${20} $Ws" > "$D.pid"; ' +
  'exec 9>&-; [ -f "$D.cancelling" ] && exit 143; set --; ';

/** The runner for the login user: the script sees the login shell's state, not the wrapper's (no `set -u`, none of its variables or functions). */
const RUNNER_PLAIN = `${RUNNER_RECORD}set +u; unset ${WRAPPER_VARS}; unset -f ${WRAPPER_FUNCS}; eval "$S"`;

/** How the runner runs the script held in $S with sudo (as root, or as another user); undefined: RUNNER_PLAIN. */
function sudoRunner(o: WrapperOptions): string | undefined {
  if (!o.sudo && !o.runAs) return undefined;
  const keep = o.secretNames.length ? ` --preserve-env=${o.secretNames.map((n) => `RB_SECRET_${n}`).join(',')}` : '';
  const who = o.runAs ? ` -u ${quote([o.runAs])}` : '';
  const auth = o.sudoPassword ? `printf '%s\\n' "$RB_SUDO_PASSWORD" | sudo -S -p ''` : 'sudo -n';
  return `${RUNNER_RECORD}${auth}${keep}${who} -- sh -c "$S" runbook-step`;
}

/** Escapes text for use inside a single-quoted shell string. */
export function singleQuoted(text: string): string {
  return text.replace(/'/g, "'\\''");
}

/**
 * Scripts longer than this travel on stdin instead of inside the exec request. The script is quoted twice (into
 * the wrapper, then the wrapper into `sh -c`), which can quadruple quote-heavy text, and one argv string may not
 * exceed 128 KiB on Linux.
 */
export const INLINE_SCRIPT_MAX = 16 * 1024;

/** The wrapper's exit code when its input arrived incomplete (nothing claimed, nothing started). */
export const INPUT_INCOMPLETE_EXIT = 242;
const INPUT_INCOMPLETE_TRAILER = '\n__RUNBOOK_WRAPPER__ input=incomplete\n';
/** sha256 of the smallest body, a lone empty line: checked without starting sha256sum. */
const EMPTY_BODY_SHA256 = crypto.createHash('sha256').update('\n').digest('hex');

/** Shell text without its comment lines: they explain the code here and cost parse time on every step there. */
function withoutComments(sh: string): string {
  return sh
    .split('\n')
    .filter((line) => !/^\s*# /.test(line))
    .join('\n');
}

/**
 * Shell functions shared by the wrapper and the kill script (BOOT holds this boot's id). `st PID` reads the state,
 * process group and start time of a process with builtins; `alive PID BOOT START` says whether that very process
 * still runs: this boot, the same start time, not a zombie. Records written before boot ids were kept have none:
 * their pid is trusted as it was.
 */
const PROCESS_FUNCS = `st() { s=; read -r s 2>/dev/null < "/proc/$1/stat"; sp=\${s%% *}; s=\${s##*) }; set -- $s; sz=\${1-}; sg=\${3-}; ss=\${20-}; }
alive() { if [ -z "\${2-}" ]; then [ -d "/proc/$1" ]; else [ "$2" = "$BOOT" ] && st "$1" && [ -n "$ss" ] && [ "$ss" = "$3" ] && [ "$sz" != Z ]; fi; }`;

/**
 * The wrapper's functions, the same for every step: sent whole in each exec, and defined once per request server
 * by the shell agent (which then receives only `wrapperRequest`). `main` runs a step whose parameters are in K
 * (record key), CAP (bytes of output sent back), S (the script, unless SIN says it comes on stdin) and RUN (the
 * runner, when not RUNNER_PLAIN). The agent's server may have read BOOT and its own start time (RB_START) already.
 */
export const WRAPPER_LIB = withoutComments(`${PROCESS_FUNCS}
RUNNER_PLAIN='${singleQuoted(RUNNER_PLAIN)}'
incomplete() { printf '${INPUT_INCOMPLETE_TRAILER.replace(/\n/g, '\\n')}' >&2; exit ${INPUT_INCOMPLETE_EXIT}; }
# claim: announce this shell in KEY.claimPID, then try to create the lock generation $g; a loser withdraws at once.
claim() {
  echo "$Wp $BOOT $Ws" >| "$D.claim$Wp"
  if { command exec 9>"$D.$g"; } 2>/dev/null; then claimed=1; else : >| "$D.claim$Wp"; fi
}
# held LOCK: its claimer still runs; or, before the claimer has written itself into it, a contender that announced
# itself still runs; or a process (the runner before it recorded itself) still has it open.
held() {
  hp=; hb=; hs=; [ -s "$1" ] && read -r hp hb hs < "$1"
  if [ -n "$hp" ]; then alive "$hp" "$hb" "$hs" && return 0
  else for f in "$D".claim*; do hp=; [ -s "$f" ] && read -r hp hb hs < "$f" && alive "$hp" "$hb" "$hs" && return 0; done; fi
  for f in /proc/[0-9]*/fd/*; do [ "$f" -ef "$1" ] && return 0; done
  return 1
}
finish() {
  code=lost
  [ -f "$D.cancelling" ] && code=cancelled
  [ -s "$D.exit" ] && read -r code < "$D.exit"
  [ -s "$D.err" ] && tail -c $((CAP + 1)) "$D.err" >&2
  pid=-; [ -s "$D.pid" ] && read -r pid pg w < "$D.pid"
  printf '\\n__RUNBOOK_WRAPPER__ mode=%s exit=%s pid=%s\\n' "$1" "$code" "$pid" >&2
  [ -s "$D.out" ] && exec tail -c $((CAP + 1)) "$D.out"
  case $code in ''|*[!0-9]*) exit 255;; *) exit "$code";; esac
}
launch() {
  printf '%s' "$S" > "$D.cmd"
  r=\${RUN:-$RUNNER_PLAIN}
  if kill -0 -$$ 2>/dev/null; then
    ( eval "$r" ) > "$D.out" 2> "$D.err" < /dev/null &
  else
    export S D BOOT Wp Ws
    setsid sh -c "$r" runbook-step > "$D.out" 2> "$D.err" < /dev/null &
  fi
  wait $!
  c=$?
  exec 9>&-
  # After a cancel the kill script records the outcome (a killed command's code would say less).
  [ -f "$D.cancelling" ] || echo $c > "$D.exit"
  finish ran
}
main() {
  set -u
  R="$HOME/${REMOTE_RUNS_DIR}"
  D="$R/$K"
  # The input: header, then the body, checked whole before anything is claimed.
  IFS= read -r h || incomplete
  case $h in "RB1 "*) ;; *) incomplete;; esac
  n=\${h#RB1 }; sum=\${n#* }; n=\${n%% *}
  b=; ok=
  while IFS= read -r line; do
    b="$b$line
"
    [ -n "$line" ] || { ok=1; break; }
  done
  [ -n "$ok" ] || incomplete
  if [ -n "$SIN" ]; then S=$(cat); b="$b$S
"; fi
  [ "\${#b}" = "$n" ] || incomplete
  if [ "$n" = 1 ]; then [ "$sum" = ${EMPTY_BODY_SHA256} ] || incomplete
  else c=$(printf '%s' "$b" | sha256sum) && [ "\${c%% *}" = "$sum" ] || incomplete; fi
  # Intact: export the secrets (NAME=base64 lines up to the empty one), decode the script.
  nl='
'
  while [ -n "\${b%%"$nl"*}" ]; do
    line=\${b%%"$nl"*}; b=\${b#*"$nl"}
    v=$(printf '%s' "\${line#*=}" | base64 -d 2>/dev/null) || incomplete
    export "RB_SECRET_\${line%%=*}=$v"
  done
  b=
  if [ -n "$SIN" ]; then S=$(printf '%s' "$S" | base64 -d 2>/dev/null) || incomplete; fi
  # Who claims: this shell (the agent's request server on that path), with its boot id and start time.
  [ -n "$BOOT" ] || { BOOT=-; read -r BOOT < /proc/sys/kernel/random/boot_id; }
  Wp=$$; Ws=$RB_START
  [ -n "$Ws" ] || { st $$; Ws=$ss; }
  [ -d "$R" ] || mkdir -p -m 700 "$R" || exit 240
  k=0; g=lock; claimed=
  set -C
  claim
  # Lost: wait for the command to be recorded; take over (the next generation) only from a claim provably over.
  while [ -z "$claimed" ] && [ ! -s "$D.pid" ] && [ ! -s "$D.exit" ]; do
    if [ -e "$D.lock$((k + 1))" ]; then k=$((k + 1)); g=lock$k
    elif held "$D.$g"; then sleep 0.1
    elif [ ! -s "$D.pid" ] && [ ! -s "$D.exit" ]; then k=$((k + 1)); g=lock$k; claim
    fi
  done
  set +C
  if [ -n "$claimed" ]; then echo "$Wp $BOOT $Ws" >&9; launch; fi
  pid=0; pg=; w=0; pb=; ps=; ws=
  [ -s "$D.pid" ] && read -r pid pg w pb ps ws < "$D.pid"
  while [ ! -s "$D.exit" ] && alive "$pid" "$pb" "$ps"; do sleep 0.1; done
  # The wrapper that ran it records the exit code right after the command ends: wait for that while it lives.
  i=0
  while [ ! -s "$D.exit" ] && alive "$w" "$pb" "$ws" && { [ -n "$pb" ] || [ $i -lt 20 ]; }; do sleep 0.1; i=$((i+1)); done
  finish attached
}`);

/**
 * One step's part of the wrapper: its parameters, then `main`. The shell agent, which has WRAPPER_LIB defined,
 * receives only this; a plain exec receives `wrapperScript`.
 */
export function wrapperRequest(o: WrapperOptions, script?: string): string {
  if (!/^[0-9a-f]{32}$/.test(o.key)) throw new Error('bad step key');
  const inline = script !== undefined && script.length <= INLINE_SCRIPT_MAX;
  const run = sudoRunner(o);
  return `K=${o.key}; CAP=${Math.max(1, Math.floor(o.capBytes))}; RUN=${run ? `'${singleQuoted(run)}'` : ''}; SIN=${inline ? '' : '1'}
${inline ? `S=${quote([script])}\n` : ''}main
`;
}

/**
 * The wrapper script, run by the login user's shell as the exec command. It starts as few processes as it can
 * (they are most of a step's overhead over a raw exec, and a fork of bash costs about a millisecond): the record
 * is a set of files $R/KEY.*, the claim is an O_EXCL create through the shell's noclobber (`command exec` so a
 * refused create does not exit the shell, and no subshell), reads (of stdin and /proc) use builtins, the command
 * runs in one background subshell whose exit code the wrapper records, and the output is sent by exec'ing `tail`
 * last. The input check starts sha256sum only when there are secrets or a script on stdin. The trailer on stderr
 * carries the outcome; the exec's own exit status is `tail`'s.
 */
export function wrapperScript(o: WrapperOptions, script?: string): string {
  // Nothing from the login environment stands in for what the agent's server would have read.
  return `${WRAPPER_LIB}\nBOOT=; RB_START=\n${wrapperRequest(o, script)}`;
}

/**
 * The exec request for a wrapper: run under /bin/sh whatever the login shell is. The exec keeps the login
 * shell's pid (and so its process group); a fork of dash costs a fraction of a fork of bash; and the command runs
 * under the same POSIX sh as it does with sudo.
 */
export function shCommand(script: string): string {
  return `exec /bin/sh -c ${quote([script])}`;
}

/**
 * Kills the step's process group (the command and its children) and records the cancel. The recorded pid is
 * signalled only while it is the same process (boot id and start time). A step claimed but not started yet is
 * marked so its runner never starts the command.
 */
export function killScript(key: string, signal: 'TERM' | 'KILL' = 'TERM'): string {
  if (!/^[0-9a-f]{32}$/.test(key)) throw new Error('bad step key');
  return `D="$HOME/${REMOTE_RUNS_DIR}/${key}"
[ -s "$D.exit" ] && exit 0
command : 2>/dev/null > "$D.cancelling" || exit 0
BOOT=-; read -r BOOT < /proc/sys/kernel/random/boot_id
${PROCESS_FUNCS}
if [ -s "$D.pid" ]; then
  read -r pid pg w pb ps ws < "$D.pid"
  [ -n "$pg" ] || pg=$pid
  if alive "$pid" "\${pb-}" "\${ps-}"; then
    kill -${signal} -"$pg" 2>/dev/null || sudo -n kill -${signal} -- -"$pg" 2>/dev/null
    i=0; while alive "$pid" "\${pb-}" "\${ps-}" && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
    kill -KILL -"$pg" 2>/dev/null || sudo -n kill -KILL -- -"$pg" 2>/dev/null
  fi
fi
[ -s "$D.exit" ] || echo cancelled > "$D.exit"
`;
}

/** Lines (newlines) of a step's stdout and stderr, "OUT ERR" (only needed when one was longer than the cap). */
export function lineCountScript(key: string): string {
  return `f="$HOME/${REMOTE_RUNS_DIR}/${key}"; printf '%s %s\\n' "$(wc -l < "$f.out")" "$(wc -l < "$f.err")"`;
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

/** True when the wrapper refused to start because its stdin arrived incomplete. */
export function inputIncomplete(exitCode: number | null, stderr: string): boolean {
  return exitCode === INPUT_INCOMPLETE_EXIT && stderr.endsWith(INPUT_INCOMPLETE_TRAILER);
}

/**
 * The stdin payload: a header `RB1 BYTES SHA256` for the body, then the body: `NAME=base64(value)` lines, an empty
 * line, then the script in base64 on one line unless it went inline. The body is ASCII, so the shell's length of
 * it is its byte count in any locale.
 */
export function wrapperStdin(secrets: Record<string, string>, script: string): Buffer {
  const lines = Object.entries(secrets)
    .map(([n, v]) => `${n}=${Buffer.from(v).toString('base64')}\n`)
    .join('');
  const body = `${lines}\n${script.length > INLINE_SCRIPT_MAX ? `${Buffer.from(script).toString('base64')}\n` : ''}`;
  return Buffer.from(`RB1 ${body.length} ${crypto.createHash('sha256').update(body).digest('hex')}\n${body}`);
}
