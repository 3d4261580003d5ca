// What a run's history and page say while it runs: the summary of each activity (workflows/summaries.ts, the action
// exactly as its change record describes it) and the current details (workflows/progress.ts). Exact formats,
// secrets by reference only, bounded sizes, untrusted text inert.
import { describeAction } from '../../audit/events';
import { utf8Bytes } from '../../common/markdown';
import { forgetSecrets } from '../../common/redact';
import { secretToken } from '../../dsl/expr';
import type { RenderedAction } from '../../dsl/render';
import type { RunState } from '../../workflows/messages';
import { progressDetails, PROGRESS_MAX_BYTES } from '../../workflows/progress';
import {
  ACTIVITY_SUMMARY_MAX_BYTES,
  actionText,
  auditSummary,
  groupSummary,
  stepSummary,
  waitSummary,
} from '../../workflows/summaries';

const ssh = (command: string, more: Partial<Extract<RenderedAction, { kind: 'ssh' }>> = {}): RenderedAction => ({
  kind: 'ssh',
  command,
  sudo: false,
  env: {},
  expectExit: [0],
  ...more,
});

const actions: RenderedAction[] = [
  ssh('systemctl restart nginx', { sudo: true }),
  ssh("echo 'x'", { sudo: true, user: 'postgres' }),
  ssh(`echo ${secretToken('token')} | sha256sum > 'm'`),
  { kind: 'ssh', script: 'set -e\necho hi', sudo: false, env: {}, expectExit: [0] },
  {
    kind: 'ssh',
    upload: { src: 'files/a.conf', dest: '/etc/a.conf', mode: '0644' },
    sudo: false,
    env: {},
    expectExit: [0],
  },
  {
    kind: 'http',
    method: 'POST',
    url: 'https://lb.example/drain?host=web-1',
    headers: {},
    auth: { bearer: secretToken('lb_token') },
    expectStatus: [200],
    tlsVerify: true,
  },
  { kind: 'sleep', duration: '30s' },
  { kind: 'notify', channel: 'oncall', message: `restart failed ${secretToken('x')}` },
  { kind: 'runbook', name: 'child', params: { word: 'hi' } },
  { kind: 'parallel' },
];

test.each(actions.map((a) => [a.kind, a]))(
  'a %s action is described as its change record describes it',
  (_kind, action) => {
    forgetSecrets();
    expect(actionText(action)).toBe(describeAction(action));
  },
);

describe('activity summaries', () => {
  test('a step: id, host, the command as audited', () => {
    expect(
      stepSummary({ stepId: 'restart', path: 'steps[1]', key: 'steps[1]', host: 'host-1', action: actions[0]! }),
    ).toBe('restart on host-1: sudo systemctl restart nginx');
  });

  test('a secret is a reference, never a value', () => {
    expect(
      stepSummary({ stepId: 'write', path: 'steps[0]', key: 'steps[0]', host: 'host-2', action: actions[2]! }),
    ).toBe("write on host-2: echo <secret:token> | sha256sum > 'm'");
  });

  test('retries, polls and rollback steps are named', () => {
    const action = ssh('curl -f localhost');
    expect(stepSummary({ stepId: 'check', path: 'steps[2]', key: 'steps[2]@3#2', host: 'h', action })).toBe(
      'check (poll 3) (attempt 2) on h: curl -f localhost',
    );
    expect(stepSummary({ stepId: 'undo', path: 'steps[0].rollback[1]', key: 'steps[0].rollback[1]', action })).toBe(
      'rollback undo: curl -f localhost',
    );
    expect(waitSummary('check', 'h', 'back off before attempt 2')).toBe('check on h: back off before attempt 2');
  });

  test('a multi-line script stays on one line, and a huge command is cut', () => {
    expect(stepSummary({ stepId: 's', path: 'steps[0]', key: 'steps[0]', action: actions[3]! })).toBe(
      's: set -e\\necho hi',
    );
    const long = stepSummary({ stepId: 's', path: 'steps[0]', key: 'steps[0]', action: ssh('x'.repeat(100_000)) });
    expect(utf8Bytes(long)).toBeLessThanOrEqual(ACTIVITY_SUMMARY_MAX_BYTES);
    expect(long.endsWith('…')).toBe(true);
  });

  test('a step group lists its steps; an audit write lists its records', () => {
    expect(groupSummary('host-1', ['write', 'read', 'skipped'])).toBe(
      'write, read, skipped on host-1: 3 SSH steps in one activity, each run and audited on its own',
    );
    expect(
      auditSummary([
        { kind: 'run.started', status: 'started' },
        { kind: 'step', step: 'steps[1]', stepId: 'read', target: 'host-2', status: 'failed' },
      ]),
    ).toBe('record run.started: started; step read on host-2: failed');
  });
});

describe('current details', () => {
  const state = (): RunState => ({
    runbook: 'fleet-touch',
    contentHash: 'abc',
    status: 'running',
    batch: { index: 2, of: 2 },
    hosts: {
      'host-1': { state: 'succeeded' },
      'host-2': { state: 'running', step: 'write,read' },
      'host-3': { state: 'failed', error: 'exit 1: [x](http://evil.example) <b>' },
    },
    pendingApprovals: [
      {
        id: 'steps[2]@host-2',
        message: 'go on host-2?',
        users: ['alice'],
        groups: [],
        quorum: 1,
        approvals: [],
        deadline: '2030-01-01T00:00:00.000Z',
      },
    ],
    decisions: [{ id: 'gate', approve: true, by: 'bob', comment: 'ok ![x](http://evil.example/p.png)' }],
  });

  test('status, batch, counts, decisions, pending approvals and one row per host', () => {
    expect(progressDetails(state())).toBe(
      [
        '- **Status:** running · batch 2 of 2',
        '- **Hosts:** 3 · 1 running, 1 failed, 1 succeeded',
        '- **Decisions:** 1, last approve `gate` by bob: ok \\!\\[x\\]\\(http\\://evil\\.example/p\\.png\\)',
        '',
        '**Pending approvals** (decide with `runbook approve ID --by NAME`)',
        '',
        '- `steps[2]@host-2`: 0 of 1 approvals (users alice), until 2030\\-01\\-01T00\\:00\\:00\\.000Z: go on host\\-2?',
        '',
        '| host | state | step | error |',
        '| --- | --- | --- | --- |',
        '| host\\-1 | succeeded |  |  |',
        '| host\\-2 | running | `write,read` |  |',
        '| host\\-3 | failed |  | exit 1\\: \\[x\\]\\(http\\://evil\\.example\\) \\<b\\> |',
      ].join('\n'),
    );
  });

  test('the change window while waiting, and the result at the end', () => {
    const s = state();
    s.status = 'waiting-window';
    s.window = {
      open: false,
      calendars: [{ name: 'sunday-night', open: false, event: undefined }],
      waitingUntil: '2030-01-06T21:00:00.000Z',
    };
    s.result = { status: 'succeeded', failures: 0, threshold: 1 };
    const text = progressDetails(s);
    expect(text).toContain('- **Status:** waiting for its change window · batch 2 of 2');
    expect(text).toContain(
      '- **Change window:** closed (sunday\\-night) · waiting until 2030\\-01\\-06T21\\:00\\:00\\.000Z',
    );
    expect(text).toContain('- **Result:** succeeded · 0 failed (tolerated 1)');
  });

  test('ten thousand hosts: the busy ones listed, the rest counted, within the size bound', () => {
    const s = state();
    s.hosts = {};
    for (let i = 0; i < 10_000; i++) s.hosts[`h${i}`] = { state: i === 9_000 ? 'running' : 'pending', step: 'x' };
    const text = progressDetails(s);
    expect(utf8Bytes(text)).toBeLessThanOrEqual(PROGRESS_MAX_BYTES);
    expect(text).toContain('- **Hosts:** 10000 · 1 running, 9999 pending');
    expect(text).toContain('| h9000 | running |');
    expect(text).toContain('| … 9975 more | | | |');
  });

  test('a flood of pending approvals with huge messages stays within the bound', () => {
    const s = state();
    s.pendingApprovals = Array.from({ length: 500 }, (_, i) => ({
      ...s.pendingApprovals[0]!,
      id: `a${i}`,
      message: 'm'.repeat(100_000),
    }));
    const text = progressDetails(s);
    expect(utf8Bytes(text)).toBeLessThanOrEqual(PROGRESS_MAX_BYTES);
    expect(text).toContain('- … 490 more');
  });
});
