// The shell agent's script, run by the real /bin/sh on this machine (no ssh in between) in a session of its own as
// sshd would start it: requests framed as agent.ts frames them. Input that arrives incomplete never starts a
// command: a payload cut short inside a whole request is refused by the wrapper (nothing claimed), and a request
// cut short by the end of the input is not run at all (the agent exits).
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { AGENT_SCRIPT } from '../../activities/ssh/agent';
import { parseTrailer, stepKey, wrapperRequest, wrapperStdin } from '../../activities/ssh/wrapper';
import { waitUntil } from '../harness/processes';
import { useShellHome } from '../harness/shell-home';

const sandbox = useShellHome('runbook-agent-');

function startAgent(): ChildProcessWithoutNullStreams {
  return spawn('/bin/sh', ['-c', AGENT_SCRIPT], {
    env: { HOME: sandbox.home, PATH: sandbox.bin },
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

const text = (b: string) => (b.endsWith('\n') ? b : `${b}\n`);
const opts = (key: string) => ({ key, capBytes: 4096, sudo: false, secretNames: [], sudoPassword: false });

/** Sends one request as agent.ts does and reads the reply (stdout, stderr, the script's exit status). */
function request(
  agent: ChildProcessWithoutNullStreams,
  script: string,
  stdin: Buffer,
): Promise<{ stdout: string; stderr: string; status: number }> {
  const boundary = `RB${crypto.randomBytes(16).toString('hex')}`;
  let out = '';
  let err = '';
  return new Promise((resolve) => {
    const check = () => {
      const m = new RegExp(`\\n${boundary} (\\d+)\\n$`).exec(out);
      if (!m || !err.endsWith(`\n${boundary}\n`)) return;
      agent.stdout.off('data', onOut);
      agent.stderr.off('data', onErr);
      resolve({ stdout: out.slice(0, m.index), stderr: err.slice(0, -boundary.length - 2), status: Number(m[1]) });
    };
    const onOut = (c: Buffer) => {
      out += c.toString();
      check();
    };
    const onErr = (c: Buffer) => {
      err += c.toString();
      check();
    };
    agent.stdout.on('data', onOut);
    agent.stderr.on('data', onErr);
    agent.stdin.write(
      `${boundary}\n${text(script)}${boundary}\n${stdin.length ? text(stdin.toString()) : ''}${boundary}\n`,
    );
  });
}

const runs = () => path.join(sandbox.home, '.runbook', 'runs');
const recordsOf = (key: string) =>
  fs.existsSync(runs()) ? fs.readdirSync(runs()).filter((f) => f.startsWith(key)) : [];

test('a whole request whose wrapper input was cut short: refused before any claim; the agent serves the next one', async () => {
  const agent = startAgent();
  try {
    const key = stepKey('wf-agent', 'cut', 'host-1');
    const marker = path.join(sandbox.home, `agent-cut-${key}`);
    const script = `printf '%s' "$RB_SECRET_pw" > ${marker}\n`;
    const payload = wrapperStdin({ pw: 'alice-password-1234' }, script);
    const cut = await request(agent, wrapperRequest(opts(key), script), payload.subarray(0, payload.indexOf('=') + 4));
    expect([cut.status, cut.stderr]).toEqual([242, '\n__RUNBOOK_WRAPPER__ input=incomplete\n']);
    expect(fs.existsSync(marker)).toBe(false);
    expect(recordsOf(key)).toEqual([]);
    const whole = await request(agent, wrapperRequest(opts(key), script), payload);
    expect(parseTrailer(whole.stderr)).toMatchObject({ mode: 'ran', exit: 0 });
    expect(fs.readFileSync(marker, 'utf8')).toBe('alice-password-1234');
  } finally {
    process.kill(-agent.pid!, 'SIGKILL');
  }
});

test.each([
  ['inside the script part', (script: string) => script.slice(0, script.length / 2)],
  [
    'inside the input part',
    (script: string, boundary: string, payload: Buffer) =>
      `${script}${boundary}\n${payload.toString().split('\n')[0]}\n`,
  ],
])('a request cut short by the end of the input (%s) is not run: the agent exits', async (_where, frame) => {
  const agent = startAgent();
  const key = stepKey('wf-agent', `eof-${_where}`, 'host-1');
  const marker = path.join(sandbox.home, `agent-eof-${key}`);
  const script = text(wrapperRequest(opts(key), `echo ran > ${marker}\n`));
  const boundary = `RB${crypto.randomBytes(16).toString('hex')}`;
  const exited = new Promise<number | null>((resolve) => agent.once('exit', resolve));
  agent.stdin.end(`${boundary}\n${frame(script, boundary, wrapperStdin({}, `echo ran > ${marker}\n`))}`);
  await exited;
  await new Promise((r) => setTimeout(r, 200));
  expect(fs.existsSync(marker)).toBe(false);
  expect(recordsOf(key)).toEqual([]);
});

test("each request is served in a process group of its own, not the agent's", async () => {
  const agent = startAgent();
  try {
    const groups: string[] = [];
    for (const i of [1, 2]) {
      const key = stepKey('wf-agent', `group-${i}`, 'host-1');
      const script = 'read -r s < /proc/self/stat; s=${s##*) }; set -- $s; echo $3\n';
      const r = await request(agent, wrapperRequest(opts(key), script), wrapperStdin({}, script));
      groups.push(r.stdout.trim());
    }
    expect(groups[0]).not.toBe(groups[1]);
    expect(groups).not.toContain(String(agent.pid));
    await waitUntil(async () => true, 'nothing');
  } finally {
    process.kill(-agent.pid!, 'SIGKILL');
  }
});
