// Integration (the main suite's real dev server; the workflow harness with stubbed activities): an alert guard that
// continues as new forgets nothing, and a remediation that ends after its guard continued as new still reaches it.
// Here, not with the other guard tests on the time-skipping test server: that server delivers a signal sent to the
// guard's id (no run id) to the run that started the remediation, closed by then, so the guard never hears it.
import { guardId } from '../../workflows/guard-state';
import { guardHelpers } from '../harness/alert-guard-helpers';
import { eventually, useTimeSkipping } from '../harness/time-skipping';

// Host names of this file's own: an old-style lock (`host-lock:HOST`) of another test file is the namespace's.
const HOSTS = ['guard-1', 'guard-2', 'guard-3'];
const wf = useTimeSkipping(HOSTS, { devServer: true });
const { guarded, delivery, deliver, control, ended, client } = guardHelpers(wf, HOSTS);

test('continue-as-new forgets nothing: incidents, running remediations, counts; a run ending later still reaches the guard', async () => {
  await wf.session(async (s) => {
    const gate = 'approval: { approvers: { users: [alice] } }';
    const { name, limits } = guarded(s, 'carry', { rate: { max: 3 } }, gate, 'high');
    const send = (fp: string, host: string) => deliver(s, name, delivery(limits, fp, { targets: [host] }), 50);
    const first = await send('c1', 'guard-1');
    expect(first.outcome).toBe('started');
    const guard = client().workflow.getHandle(guardId(name));
    const before = (await guard.describe()).runId;
    // Enough deliveries (duplicates) to pass the 50-event history limit several times over.
    for (let i = 0; i < 30; i++) expect((await send('c1', 'guard-1')).outcome).toBe('deduplicated');
    expect((await guard.describe()).runId).not.toBe(before);
    const status = await control(s, name, { action: 'status', by: 'test' });
    expect(status.counters).toMatchObject({ deliveries: 31, started: 1, deduplicated: 30 });
    expect(status.active.map((a) => a.workflowId)).toEqual([first.workflowId]);
    expect((await send('c2', 'guard-2')).outcome).toBe('started');
    expect((await send('c3', 'guard-3')).outcome).toBe('started');
    expect((await send('c4', 'guard-3')).outcome).toBe('suppressed'); // the rate limit counted across runs
    // The first remediation ends (rejected at its gate: a failure) after its guard continued as new.
    await client().workflow.getHandle(first.workflowId!).signal('decide', { id: 'gate', approve: false, by: 'alice' });
    expect(await ended(first.workflowId!)).toBe('failed');
    await eventually(
      async () => (await control(s, name, { action: 'status', by: 'test' })).counters.failed === 1,
      'the guard to hear the run ended',
    );
    const after = await control(s, name, { action: 'status', by: 'test' });
    expect(after.active.map((a) => a.fingerprint).sort()).toEqual(['c2', 'c3']);
    // Terminated, a remediation tells nobody; the guard asks how its old runs ended (every minute while any runs;
    // this guard every second).
    const [c2, c3] = after.active.sort((a, b) => a.fingerprint.localeCompare(b.fingerprint)).map((a) => a.workflowId!);
    await client().workflow.getHandle(c2!).terminate('operator');
    await eventually(
      async () => (await control(s, name, { action: 'status', by: 'test' })).active.length === 1,
      'the guard to find the terminated run',
    );
    const last = await control(s, name, { action: 'status', by: 'test' });
    expect(last.active.map((a) => a.fingerprint)).toEqual(['c3']);
    expect(last.counters.failed).toBe(2);
    await client().workflow.getHandle(c3!).cancel();
    expect(await ended(c3!)).toBe('cancelled');
  });
});
