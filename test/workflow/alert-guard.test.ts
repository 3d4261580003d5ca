// Workflow (time-skipping test server, stubbed activities): the alert guard. Deliveries go in by Update-with-Start as
// the receiver sends them. Two deliveries of one incident (at once, or after the run ended) start one run; a new
// incident of the same alert starts another; the rate limit, blast radius, concurrency per target, freeze and
// circuit breaker suppress (one record and one escalation per incident); a resolution cancels a run waiting at its
// gate; an invalid delivery is refused before it reaches history.
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { guardId, type GuardAnswer } from '../../workflows/guard-state';
import { deliverAlertUpdate, stateQuery } from '../../workflows/messages';
import { guardHelpers } from '../harness/alert-guard-helpers';
import { eventually, resultOf, useTimeSkipping } from '../harness/time-skipping';

const wf = useTimeSkipping(['host-1', 'host-2', 'host-3']);
const { guarded, delivery, deliver, control, ended, client, startGuard } = guardHelpers(wf);
const HOUR = 3_600_000;

test('one incident, one run: simultaneous and later redeliveries are duplicates; a new incident runs again', async () => {
  await wf.session(async (s) => {
    const { name, limits } = guarded(s, 'dedup');
    const answers = await Promise.all([1, 2, 3].map(() => deliver(s, name, delivery(limits, 'fp1'))));
    const started = answers.filter((a) => a.outcome === 'started');
    expect(started).toHaveLength(1);
    expect(answers.filter((a) => a.outcome === 'deduplicated')).toHaveLength(2);
    expect(started[0]!.workflowId).toBe(`alert:${name}:fp1`);
    expect(await ended(started[0]!.workflowId!)).toBe('succeeded');
    // repeat_interval: the same incident after its run ended is still a duplicate.
    const again = await deliver(s, name, delivery(limits, 'fp1'));
    expect(again).toMatchObject({
      outcome: 'deduplicated',
      reason: 'this incident was remediated already (succeeded)',
    });
    expect(s.stubs.calls.map((c) => `${c.host} ${c.key}`)).toEqual(['host-1 steps[0]']);
    // The alert fired again (another startsAt): a new incident, a new run under the same id.
    const next = await deliver(s, name, delivery(limits, 'fp1', { startsAt: '2026-11-28T05:00:00Z' }));
    expect(next.outcome).toBe('started');
    await ended(next.workflowId!);
    expect(s.stubs.calls).toHaveLength(2);
    const run = s.stubs.audit.find((r) => r.kind === 'run.started' && r.run === next.workflowId);
    expect(run?.detail?.alert).toMatchObject({ fingerprint: 'fp1', labels: { alertname: 'Down' } });
  });
});

test('rate limit per runbook: the run over the limit is suppressed once, recorded and escalated; the window passes', async () => {
  await wf.session(async (s) => {
    const { name, limits } = guarded(s, 'rate', { rate: { max: 2, window: '1h' }, perTarget: { max: 100 } });
    const hosts = ['host-1', 'host-2', 'host-3'];
    const answers: GuardAnswer[] = [];
    for (const [i, h] of hosts.entries())
      answers.push(await deliver(s, name, delivery(limits, `r${i}`, { targets: [h] })));
    expect(answers.map((a) => a.outcome)).toEqual(['started', 'started', 'suppressed']);
    expect(answers[2]!.reason).toBe('rate limit: 2 runs in 1h (limit 2)');
    // The same suppressed incident again: no second record or escalation.
    expect((await deliver(s, name, delivery(limits, 'r2', { targets: ['host-3'] }))).outcome).toBe('suppressed');
    await eventually(() => s.stubs.escalations.length === 1, 'one escalation');
    expect(s.stubs.escalations[0]).toMatchObject({
      kind: 'suppressed',
      runbook: name,
      fingerprint: 'r2',
      workflowId: guardId(name),
      reason: 'rate limit: 2 runs in 1h (limit 2)',
    });
    await eventually(() => s.stubs.audit.some((r) => r.kind === 'alert.suppressed'), 'the suppression record');
    expect(s.stubs.audit.filter((r) => r.kind === 'alert.suppressed')).toHaveLength(1);
    await wf.env.sleep(HOUR);
    // The window passed: the suppressed incident, delivered again (repeat_interval), now starts; so does a new one.
    const retried = await deliver(s, name, delivery(limits, 'r2', { targets: ['host-3'] }));
    expect(retried.outcome).toBe('started');
    await ended(retried.workflowId!);
    const later = await deliver(s, name, delivery(limits, 'r3', { targets: ['host-2'] }));
    expect(later.outcome).toBe('started');
    await ended(later.workflowId!);
  });
});

test('blast radius and concurrency per target suppress; an invalid delivery is refused before it reaches history', async () => {
  await wf.session(async (s) => {
    const { name, limits } = guarded(
      s,
      'blast',
      { maxTargets: 2 },
      'approval: { approvers: { users: [alice] } }',
      'high',
    );
    const wide = await deliver(s, name, delivery(limits, 'b1', { targets: ['host-1', 'host-2', 'host-3'] }));
    expect(wide).toMatchObject({
      outcome: 'suppressed',
      reason: 'blast radius: the run would act on 3 targets, more than the limit of 2',
    });
    const first = await deliver(s, name, delivery(limits, 'b2', { targets: ['host-1'] }));
    expect(first.outcome).toBe('started'); // waits at its gate, holding host-1
    const second = await deliver(s, name, delivery(limits, 'b3', { targets: ['host-1', 'host-2'] }));
    expect(second).toMatchObject({
      outcome: 'suppressed',
      reason: 'concurrency on host-1: 1 remediation(s) already running (limit 1)',
    });
    const bad = { ...delivery(limits, 'b4'), alert: { ...delivery(limits, 'b4').alert, fingerprint: 'bad fp!' } };
    await expect(deliver(s, name, bad)).rejects.toThrow(WorkflowUpdateFailedError);
    const status = await control(s, name, { action: 'status', by: 'test' });
    expect(status.counters).toMatchObject({ deliveries: 3, started: 1, suppressed: 2 });
    expect(status.active.map((a) => a.fingerprint)).toEqual(['b2']);
  });
});

test('resolution cancels a remediation still waiting at its gate (nothing ran); with onResolved: record it only records', async () => {
  await wf.session(async (s) => {
    const gate = 'approval: { approvers: { users: [alice] } }';
    const { name, limits } = guarded(s, 'resolve', {}, gate, 'high');
    const started = await deliver(s, name, delivery(limits, 'z1'));
    const h = client().workflow.getHandle(started.workflowId!);
    await eventually(async () => (await h.query(stateQuery)).status === 'awaiting-approval', 'the gate');
    const resolved = await deliver(s, name, delivery(limits, 'z1', { status: 'resolved' }));
    expect(resolved).toMatchObject({ outcome: 'resolved', workflowId: started.workflowId });
    expect(await ended(started.workflowId!)).toBe('cancelled');
    expect((await h.describe()).status.name).toBe('COMPLETED');
    expect(s.stubs.calls).toEqual([]);
    await eventually(() => s.stubs.audit.some((r) => r.kind === 'alert.resolved'), 'the resolution record');
    expect(s.stubs.audit.find((r) => r.kind === 'alert.resolved')?.detail).toMatchObject({
      run: { workflowId: started.workflowId },
      outcome: 'started',
    });
    // A redelivered resolution is not recorded twice.
    expect((await deliver(s, name, delivery(limits, 'z1', { status: 'resolved' }))).outcome).toBe('deduplicated');
    // A cancelled remediation is not a failure: nothing escalated.
    expect(s.stubs.escalations).toEqual([]);

    const rec = guarded(s, 'record', {}, gate, 'high');
    const recLimits = { ...rec.limits, onResolved: 'record' as const };
    const kept = await deliver(s, rec.name, delivery(recLimits, 'z2', { targets: ['host-2'] }));
    const kh = client().workflow.getHandle(kept.workflowId!);
    await eventually(async () => (await kh.query(stateQuery)).status === 'awaiting-approval', 'the gate');
    await deliver(s, rec.name, delivery(recLimits, 'z2', { status: 'resolved', targets: ['host-2'] }));
    expect((await kh.query(stateQuery)).status).toBe('awaiting-approval');
    await kh.cancel();
    expect(await ended(kept.workflowId!)).toBe('cancelled');
  });
});

test('freeze suppresses until unfrozen; failures open the breaker; reset closes it; every change is recorded', async () => {
  await wf.session(async (s) => {
    const { name, limits } = guarded(s, 'breaker', {
      breaker: { failures: 2, window: '1h' },
      rate: { max: 100 },
      perTarget: { max: 100 },
    });
    await control(s, name, { action: 'freeze', by: 'carol', reason: 'change freeze' });
    expect(await deliver(s, name, delivery(limits, 'f0'))).toMatchObject({
      outcome: 'suppressed',
      reason: 'frozen by carol: change freeze',
    });
    await control(s, name, { action: 'unfreeze', by: 'carol' });
    s.stubs.script(() => ({ exit: 1 }));
    for (const fp of ['f1', 'f2']) {
      const a = await deliver(s, name, delivery(limits, fp));
      expect(a.outcome).toBe('started');
      expect(await ended(a.workflowId!)).toBe('failed');
    }
    await eventually(
      async () => (await control(s, name, { action: 'status', by: 'test' })).breaker !== undefined,
      'the breaker to open',
    );
    const blocked = await deliver(s, name, delivery(limits, 'f3'));
    expect(blocked.outcome).toBe('suppressed');
    expect(blocked.reason).toMatch(/^circuit breaker open until .* \(2 failed remediations in 1h\)$/);
    await eventually(() => s.stubs.escalations.length === 5, 'five escalations');
    expect(s.stubs.escalations.map((e) => e.kind).sort()).toEqual([
      'breaker-open',
      'remediation-failed',
      'remediation-failed',
      'suppressed',
      'suppressed',
    ]);
    await control(s, name, { action: 'reset', by: 'carol', reason: 'fixed the disk' });
    s.stubs.script(() => ({ exit: 0 }));
    const after = await deliver(s, name, delivery(limits, 'f4'));
    expect(after.outcome).toBe('started');
    expect(await ended(after.workflowId!)).toBe('succeeded');
    await eventually(() => s.stubs.audit.filter((r) => r.kind === 'alert.control').length === 3, 'three controls');
    expect(s.stubs.audit.filter((r) => r.kind === 'alert.control').map((r) => r.status)).toEqual([
      'frozen',
      'unfrozen',
      'reset',
    ]);
    expect(s.stubs.audit.filter((r) => r.kind === 'alert.breaker').map((r) => r.status)).toEqual(['open']);
  });
});

test('a refused alert (a label failing a param) is recorded and escalated once, and starts nothing', async () => {
  await wf.session(async (s) => {
    const { name, limits } = guarded(s, 'refuse');
    const problem = 'params.service: "x; rm" does not match the pattern [a-z]+ [RB1304]';
    for (let i = 0; i < 3; i++)
      expect(await deliver(s, name, delivery(limits, 'q1', { refused: [problem] }))).toMatchObject({
        outcome: 'refused',
        reason: problem,
      });
    await eventually(() => s.stubs.escalations.length === 1, 'one escalation');
    expect(s.stubs.audit.filter((r) => r.kind === 'alert.refused')).toHaveLength(1);
    expect(s.stubs.calls).toEqual([]);
  });
});

test('firing and resolved together: the run is told once it starts, ends at its gate with nothing done; a late firing is a duplicate', async () => {
  await wf.session(async (s) => {
    const { name, limits } = guarded(s, 'crossed', {}, 'approval: { approvers: { users: [alice] } }', 'high');
    const [fired, resolved] = await client().workflow.executeUpdateWithStart(deliverAlertUpdate, {
      args: [[delivery(limits, 'x1'), delivery(limits, 'x1', { status: 'resolved' })]],
      startWorkflowOperation: startGuard(s, name),
    });
    expect(fired!.outcome).toBe('started');
    expect(resolved!.outcome).toBe('resolved');
    const h = client().workflow.getHandle(fired!.workflowId!);
    const result = await resultOf(wf.env, h); // completes: the alert resolved, there was nothing to do
    expect(result.status).toBe('cancelled');
    expect((await h.describe()).status.name).toBe('COMPLETED');
    expect(s.stubs.calls).toEqual([]);
    expect((await h.query(stateQuery)).decisions).toEqual([
      { id: 'gate', approve: false, by: 'alert-resolved', comment: 'the alert resolved' },
    ]);
    // The firing, delivered again after the resolution (they crossed): a duplicate, no second run.
    expect(await deliver(s, name, delivery(limits, 'x1'))).toMatchObject({
      outcome: 'deduplicated',
      reason: 'this incident resolved already',
    });
    const status = await control(s, name, { action: 'status', by: 'test' });
    expect(status.counters).toMatchObject({ started: 1, failed: 0 });
    expect(status.active).toEqual([]);
  });
});
