// Workflow (time-skipping test server, stubbed activities): approvals. The gate of a high-risk runbook and
// approval steps: approve (a quorum of allowed people), reject, time out after an hour of skipped time, escalate
// once; two approvals pending at once on two hosts; decisions for ids nobody waits on, or from people not
// allowed, are ignored; a decision by path does not carry over to later batches, one by id counts even early.
import { FAILURES } from '../../common/failure-types';
import { decideSignal, type ApprovalDecision } from '../../workflows/messages';
import { eventually, runbookYaml, useTimeSkipping, type Run } from '../harness/time-skipping';

const wf = useTimeSkipping(['host-1', 'host-2']);
const HOUR = 3_600_000;

const gated = (name: string, approval = '{ approvers: { users: [alice], groups: [dba] }, quorum: 2, timeout: 1h }') =>
  runbookYaml(
    name,
    `
targets: host:host-1
approval: ${approval}
steps:
  - id: change
    ssh: { run: 'change' }
`,
    'high',
  );

const decide = (run: Run, ...decisions: ApprovalDecision[]) =>
  Promise.all(decisions.map((d) => run.handle.signal(decideSignal, d)));
const pendingIds = async (run: Run) => (await run.state()).pendingApprovals.map((p) => p.id).sort();
const waitPending = (run: Run, ids: string[]) =>
  eventually(
    async () => JSON.stringify(await pendingIds(run)) === JSON.stringify(ids),
    `pending approvals ${ids.join(', ')}`,
  );
const waitDecisions = (run: Run, n: number) =>
  eventually(async () => (await run.state()).decisions.length >= n, `${n} decisions`);

test('gate: nothing runs before a quorum of allowed approvers; one not allowed and a repeated approver do not count', async () => {
  const run = await wf.run(gated('gate-quorum'), {
    during: async (r) => {
      await waitPending(r, ['gate']);
      expect((await r.state()).status).toBe('awaiting-approval');
      await decide(r, { id: 'gate', approve: true, by: 'mallory', comment: 'let me' });
      await decide(r, { id: 'gate', approve: true, by: 'alice' });
      await decide(r, { id: 'gate', approve: true, by: 'alice', comment: 'again' });
      await waitDecisions(r, 3);
      const [pending] = (await r.state()).pendingApprovals;
      expect(pending).toMatchObject({ id: 'gate', quorum: 2, approvals: [{ by: 'alice' }] });
      expect(r.stubs.calls).toEqual([]);
      await decide(r, { id: 'gate', approve: true, by: 'carol', groups: ['dba'], comment: 'ok' });
    },
  });
  expect(run.result!.status).toBe('succeeded');
  expect(run.stubs.keys()).toEqual(['steps[0]']);
  const decisions = run.stubs.audit.filter((r) => r.kind === 'approval.decision');
  expect(decisions.map((r) => [r.key, r.detail?.by, r.detail?.counted])).toEqual([
    ['gate/decision/1', 'mallory', false],
    ['gate/decision/2', 'alice', true],
    ['gate/decision/3', 'alice', true],
    ['gate/decision/4', 'carol', true],
  ]);
  expect(run.stubs.audit.find((r) => r.kind === 'approval' && r.key === 'gate')).toMatchObject({
    status: 'approved',
    approvals: [{ by: 'alice' }, { by: 'carol', comment: 'ok' }],
  });
});

test('gate: one allowed rejection fails the run at once, naming who and why; a rejection from anyone else is ignored', async () => {
  const run = await wf.run(gated('gate-reject'), {
    during: async (r) => {
      await waitPending(r, ['gate']);
      await decide(r, { id: 'gate', approve: false, by: 'mallory', groups: ['web'], comment: 'spite' });
      await waitDecisions(r, 1);
      expect(await pendingIds(r)).toEqual(['gate']);
      await decide(r, { id: 'gate', approve: true, by: 'alice' });
      await decide(r, { id: 'gate', approve: false, by: 'carol', groups: ['dba'], comment: 'not today' });
    },
  });
  expect(run.failure).toEqual({
    type: FAILURES.approvalRejected,
    message: 'Approval "gate" rejected by carol: not today',
    cancelled: false,
  });
  expect(run.stubs.calls).toEqual([]);
  expect(run.final.status).toBe('failed');
  expect(run.final.pendingApprovals).toEqual([]);
  expect(run.stubs.audit.find((r) => r.kind === 'approval')).toMatchObject({
    key: 'gate',
    status: 'rejected',
    error: 'rejected by carol: not today',
  });
});

test('gate: no decision within its timeout (an hour, skipped) fails the run with ApprovalTimedOut; no step runs', async () => {
  const started = Date.now();
  const run = await wf.run(gated('gate-timeout', '{ approvers: { users: [alice] }, timeout: 1h }'));
  expect(run.failure).toEqual({
    type: FAILURES.approvalTimedOut,
    message: 'Approval "gate" got 0 of 1 approvals in time',
    cancelled: false,
  });
  expect(run.stubs.calls).toEqual([]);
  expect(run.workflowMs).toBeGreaterThanOrEqual(HOUR);
  expect(run.workflowMs).toBeLessThan(HOUR + 60_000);
  expect(Date.now() - started).toBeLessThan(30_000);
  expect(run.stubs.notifications).toEqual([]);
});

const perHost = (name: string, strategy: string, extra = '') =>
  runbookYaml(
    name,
    `
targets: 'host:host-1,host:host-2'
strategy: ${strategy}
steps:
  - id: prep
    ssh: { run: 'prep' }
    rollback:
      - id: unprep
        ssh: { run: 'unprep' }
  - id: ask
    approval: { message: 'go on \${{ target.name }}?', approvers: { users: [alice] }, timeout: 1h${extra} }
  - id: act
    ssh: { run: 'act' }
`,
  );

test('two approvals pending at once on two hosts: each decided on its own; unknown ids and malformed decisions are ignored', async () => {
  const run = await wf.run(perHost('two-pending', '{ type: parallel }'), {
    during: async (r) => {
      await waitPending(r, ['steps[1]@host-1', 'steps[1]@host-2']);
      expect((await r.state()).pendingApprovals.map((p) => p.message).sort()).toEqual([
        'go on host-1?',
        'go on host-2?',
      ]);
      await decide(
        r,
        { id: 'steps[9]@host-1', approve: true, by: 'alice' },
        { id: 'gate', approve: true, by: 'alice' },
        { id: 'steps[1]@host-3', approve: false, by: 'alice' },
      );
      await r.handle.signal(decideSignal, { id: 'steps[1]@host-1', approve: 'yes', by: 'alice' } as never);
      await waitDecisions(r, 3);
      expect(await pendingIds(r)).toEqual(['steps[1]@host-1', 'steps[1]@host-2']);
      expect(r.stubs.keys()).toEqual(['steps[0]', 'steps[0]']);
      await decide(r, { id: 'steps[1]@host-2', approve: true, by: 'alice' });
      await decide(r, { id: 'steps[1]@host-1', approve: false, by: 'alice', comment: 'not this one' });
    },
  });
  expect(run.final.decisions).toHaveLength(5); // the malformed one is not even kept
  expect(run.result!.hosts['host-2']).toMatchObject({
    state: 'succeeded',
    steps: { prep: 'succeeded', ask: 'succeeded', act: 'succeeded' },
  });
  expect(run.result!.hosts['host-1']).toMatchObject({
    state: 'rolled-back',
    error: 'Approval "steps[1]@host-1" rejected by alice: not this one',
  });
  expect(run.stubs.keys('host-1')).toEqual(['steps[0]', 'steps[0].rollback[0]']);
  expect(run.stubs.keys('host-2')).toEqual(['steps[0]', 'steps[2]']);
  expect(run.result).toMatchObject({ status: 'failed', failures: 1 });
});

test('a decision by step path decides the hosts waiting there now, not the ones of a later batch', async () => {
  const run = await wf.run(perHost('path-decision', '{ type: rolling, batch: 1, maxFailures: 1 }'), {
    during: async (r) => {
      await waitPending(r, ['steps[1]@host-1']);
      await decide(r, { id: 'steps[1]', approve: true, by: 'alice' });
      await waitPending(r, ['steps[1]@host-2']);
    },
  });
  expect(run.result!.hosts['host-1']!.state).toBe('succeeded');
  expect(run.result!.hosts['host-2']).toMatchObject({
    state: 'rolled-back',
    error: 'Approval "steps[1]@host-2" got 0 of 1 approvals in time',
  });
  expect(run.result).toMatchObject({ status: 'degraded', failures: 1, threshold: 1 });
  expect(run.workflowMs).toBeGreaterThanOrEqual(HOUR);
});

test('a decision by id counts even when it arrives before its host reaches the approval', async () => {
  const run = await wf.run(perHost('early-decision', '{ type: rolling, batch: 1 }'), {
    during: async (r) => {
      await decide(r, { id: 'steps[1]@host-2', approve: true, by: 'alice', comment: 'early' });
      await waitPending(r, ['steps[1]@host-1']);
      await decide(r, { id: 'steps[1]@host-1', approve: true, by: 'alice' });
    },
  });
  expect(run.result!.status).toBe('succeeded');
  expect(run.stubs.keys()).toEqual(['steps[0]', 'steps[2]', 'steps[0]', 'steps[2]']);
  expect(run.workflowMs).toBeLessThan(HOUR); // host-2 never waited for its timeout
  expect(run.stubs.audit.find((r) => r.kind === 'approval' && r.key === 'steps[1]@host-2')).toMatchObject({
    status: 'approved',
    approvals: [{ by: 'alice', comment: 'early' }],
  });
});

test('onTimeout escalate: after the first hour the escalation channel is told, and a decision in the second hour counts', async () => {
  const run = await wf.run(
    perHost('escalate-approve', '{ type: rolling, batch: 1 }', ', onTimeout: escalate').replace(
      "'host:host-1,host:host-2'",
      'host:host-1',
    ),
    {
      during: async (r) => {
        await waitPending(r, ['steps[1]@host-1']);
        await wf.env.sleep('61m');
        await eventually(() => r.stubs.notifications.length === 1, 'the escalation');
        await decide(r, { id: 'steps[1]@host-1', approve: true, by: 'alice' });
      },
    },
  );
  expect(run.stubs.notifications).toEqual([
    {
      channel: 'escalation',
      message: 'escalate-approve: approval "steps[1]@host-1" got no decision in time; waiting once more. go on host-1?',
    },
  ]);
  expect(run.result!.status).toBe('succeeded');
  expect(run.workflowMs).toBeGreaterThanOrEqual(HOUR);
  expect(run.workflowMs).toBeLessThan(2 * HOUR);
  expect(run.stubs.audit.filter((r) => r.kind === 'approval').map((r) => [r.key, r.status])).toEqual([
    ['steps[1]@host-1/escalated', 'escalated'],
    ['steps[1]@host-1', 'approved'],
  ]);
});

test('onTimeout escalate with no decision at all: escalated once, then timed out after the second hour', async () => {
  const run = await wf.run(
    perHost('escalate-timeout', '{ type: rolling, batch: 1 }', ', onTimeout: escalate').replace(
      "'host:host-1,host:host-2'",
      'host:host-1',
    ),
  );
  expect(run.stubs.notifications.map((n) => n.channel)).toEqual(['escalation']);
  expect(run.result!.hosts['host-1']).toMatchObject({
    state: 'rolled-back',
    error: 'Approval "steps[1]@host-1" got 0 of 1 approvals in time',
  });
  expect(run.workflowMs).toBeGreaterThanOrEqual(2 * HOUR);
  expect(run.stubs.keys()).toEqual(['steps[0]', 'steps[0].rollback[0]']);
});
