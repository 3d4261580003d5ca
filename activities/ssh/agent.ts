// Node side. A shell agent per pooled connection: one long-lived `/bin/sh` on an exec channel that runs wrapper
// scripts sent on its stdin, one at a time. A step then costs no channel open, no sshd session and no login shell
// start, which is most of a raw exec's time: an exactly-once step through the agent takes about as long as a bare
// `ssh host true`.
//
// Framing: a request is a random boundary line, the script's lines (the step's part of the wrapper: the server
// has the wrapper's functions already), the boundary, the wrapper's stdin lines, the boundary. The agent answers
// with the script's stdout then "\nBOUNDARY STATUS\n" on stdout, and its stderr then "\nBOUNDARY\n" on stderr. The
// wrapper caps what it prints, so a reply is bounded. The stdin part (secret values) reaches the script as a
// here-document, which dash feeds through a pipe: it never touches the disk or argv. A request cut short (the
// connection dropped while it was sent) is never run: the agent exits instead.
//
// Each request is served by a fresh `sh` in a session (and so a process group) of its own, started by `setsid` as
// soon as the previous one is done: with a few milliseconds between steps its start is off the critical path. The
// wrapper runs the command in a plain subshell in that group, so a cancel kills the step's command and whatever it
// started, never the agent nor what earlier steps left running; the killed request's server takes the agent with
// it, and the next step starts a new one.
//
// The agent changes nothing about exactly-once: the script is the same wrapper, keyed by the same record. If
// the agent dies mid-request (its connection dropped, or a cancel killed the request's group), the caller runs the
// wrapper again over a plain exec channel, which re-attaches to the record.
import crypto from 'node:crypto';
import type { Client, ClientChannel } from 'ssh2';
import { shCommand, singleQuoted, WRAPPER_LIB } from './wrapper';

/**
 * Serves one request; exits non-zero at end of input (or a request cut short), which ends the agent. Started
 * before its request arrives, it defines the wrapper's functions and reads the boot id and its own start time
 * first, so a request carries only the step's part of the wrapper (`wrapperRequest`).
 */
const SERVE = `${WRAPPER_LIB}
BOOT=-; read -r BOOT < /proc/sys/kernel/random/boot_id
st $$; RB_START=$ss
IFS= read -r B || exit 1
S=; P=; l=
while IFS= read -r l && [ "$l" != "$B" ]; do S="$S$l
"; done
[ "$l" = "$B" ] || exit 1
l=
while IFS= read -r l && [ "$l" != "$B" ]; do P="$P$l
"; done
[ "$l" = "$B" ] || exit 1
( unset l P B; eval "$S" ) <<RB_AGENT_INPUT
$P
RB_AGENT_INPUT
printf '\\n%s %s\\n' "$B" "$?"
printf '\\n%s\\n' "$B" >&2
`;

/** The agent: one request server after another, each in a new session (-w: setsid waits if it had to fork). */
export const AGENT_SCRIPT = `while setsid -w /bin/sh -c '${singleQuoted(SERVE)}' runbook-agent; do :; done
`;

export interface AgentResult {
  stdout: string;
  stderr: string;
  exitCode: number | null;
}

/** Thrown when the agent is gone before it answered: run the script over a plain exec instead. */
export class AgentLost extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AgentLost';
  }
}

class ShellAgent {
  private channel?: Promise<ClientChannel>;
  private out: Buffer[] = [];
  private err: Buffer[] = [];
  private waiter?: () => void;
  private failer?: (e: Error) => void;
  busy = false;
  dead = false;

  constructor(private readonly client: Client) {}

  private open(): Promise<ClientChannel> {
    this.channel ??= new Promise<ClientChannel>((resolve, reject) => {
      this.client.exec(shCommand(AGENT_SCRIPT), (e, ch) => {
        if (e) {
          this.dead = true;
          return reject(new AgentLost(`agent could not start: ${e.message}`));
        }
        ch.on('data', (c: Buffer) => {
          this.out.push(c);
          this.waiter?.();
        });
        ch.stderr.on('data', (c: Buffer) => {
          this.err.push(c);
          this.waiter?.();
        });
        ch.on('close', () => {
          this.dead = true;
          this.failer?.(new AgentLost('agent channel closed'));
        });
        ch.on('error', () => undefined); // 'close' follows
        resolve(ch);
      });
    });
    return this.channel;
  }

  /** Ends the agent's channel (a request in flight fails with AgentLost). */
  close(): boolean {
    if (this.dead || !this.channel) return false;
    this.dead = true;
    void this.channel.then(
      (ch) => ch.close(),
      () => undefined,
    );
    return true;
  }

  /** Runs one script; the agent must be idle (check `busy`). */
  async run(script: string, stdin: Buffer, timeoutMs: number): Promise<AgentResult> {
    this.busy = true;
    try {
      const ch = await this.open();
      if (this.dead) throw new AgentLost('agent channel closed');
      const boundary = `RB${crypto.randomBytes(16).toString('hex')}`;
      const outEnd = new RegExp(`\\n${boundary} (\\d+)\\n$`);
      const errEnd = `\n${boundary}\n`;
      this.out = [];
      this.err = [];
      return await new Promise<AgentResult>((resolve, reject) => {
        const tail = (bufs: Buffer[]) => Buffer.concat(bufs.slice(-4)).toString('latin1').slice(-80);
        const timer = setTimeout(() => {
          this.dead = true;
          ch.close();
          reject(new AgentLost('agent request timed out'));
        }, timeoutMs);
        this.failer = (e) => {
          clearTimeout(timer);
          reject(e);
        };
        this.waiter = () => {
          const m = outEnd.exec(tail(this.out));
          if (!m || !tail(this.err).endsWith(errEnd)) return;
          clearTimeout(timer);
          this.waiter = undefined;
          this.failer = undefined;
          const stdout = Buffer.concat(this.out).toString('utf8');
          const stderr = Buffer.concat(this.err).toString('utf8');
          resolve({
            stdout: stdout.slice(0, stdout.length - m[0].length),
            stderr: stderr.slice(0, stderr.length - errEnd.length),
            exitCode: Number(m[1]),
          });
        };
        const text = (b: string) => (b.endsWith('\n') ? b : `${b}\n`);
        ch.write(
          `${boundary}\n${text(script)}${boundary}\n${stdin.length ? text(stdin.toString('utf8')) : ''}${boundary}\n`,
        );
      });
    } finally {
      this.waiter = undefined;
      this.failer = undefined;
      this.busy = false;
    }
  }
}

const agents = new WeakMap<Client, ShellAgent>();

/**
 * Closes the connection's agent, if it has one, to free its sshd session (a host with a low `MaxSessions`
 * refuses further channels while it runs). True when there was one to close.
 */
export function closeAgent(client: Client): boolean {
  const agent = agents.get(client);
  agents.delete(client);
  return agent ? agent.close() : false;
}

/** The connection's agent when it is free, else undefined (use a plain exec then). */
export function idleAgent(client: Client): ShellAgent | undefined {
  let agent = agents.get(client);
  if (!agent || agent.dead) {
    agent = new ShellAgent(client);
    agents.set(client, agent);
  }
  return agent.busy ? undefined : agent;
}
