// Workflow (time-skipping test server, stubbed steps, the real lock manager and its real activities): runs queued on
// one host are served in the order they asked, one at a time, while the manager continues as new every few
// requests.
import { hostLockManagerId } from '../../common/failure-types';
import { lockTableQuery } from '../../workflows/host-lock-manager';
import { eventually, runbookYaml, useTimeSkipping, type Run, type Session } from '../harness/time-skipping';
import { decideSignal } from '../../workflows/messages';
import { delay } from '../harness/time-skipping-stubs';

const wf = useTimeSkipping(['host-1']);

const touch = (name: string) =>
  runbookYaml(
    name,
    `
targets: 'host:host-1'
steps:
  - { id: touch, ssh: { run: 'touch' }, timeout: 15m }
`,
  );
/** Holds host-1 at an approval step, then touches it. */
const held = (name: string) =>
  runbookYaml(
    name,
    `
targets: 'host:host-1'
steps:
  - { id: hold, approval: { approvers: { users: [alice] }, timeout: 2h } }
  - { id: touch, ssh: { run: 'touch' }, timeout: 15m }
`,
  );
const manager = (s: Session) => wf.env.client.workflow.getHandle(hostLockManagerId(s.taskQueue));
const waiting = (run: Run) =>
  eventually(
    async () => (await run.state()).hosts['host-1']?.state === 'waiting-lock',
    `${run.handle.workflowId} to wait`,
  );
const table = (s: Session) => manager(s).query(lockTableQuery);
const order = (s: Session) => s.stubs.calls.map((c) => c.run.replace(s.prefix, ''));
const oneAtATime = (s: Session) => s.stubs.calls.every((c, i) => i === 0 || c.start > s.stubs.calls[i - 1]!.end!);

test('20 runs queued on one host: served in the order they asked, one at a time, across continue-as-new', async () => {
  const N = 20;
  await wf.session(async (s) => {
    await manager(s)
      .terminate('test: a manager that continues as new often')
      .catch(() => undefined);
    await wf.env.client.workflow.start('hostLockManager', {
      taskQueue: s.taskQueue,
      workflowId: hostLockManagerId(s.taskQueue),
      args: [{ historyLimit: 100 }],
    });
    // The first holds the host at an approval (no activity runs meanwhile) until every other run is queued.
    const first = await s.start(held('q'), { id: '0' });
    await eventually(async () => (await first.state()).pendingApprovals.length === 1, 'the first to hold the host');
    const runs: Run[] = [first];
    for (let i = 1; i < N; i++) {
      const r = await s.start(touch('q'), { id: String(i) });
      await waiting(r);
      runs.push(r);
    }
    const firstRunId = (await manager(s).describe()).runId;
    await first.handle.signal(decideSignal, { id: 'steps[0]@host-1', approve: true, by: 'alice' });
    // One result at a time: the test client unlocks the server's clock for each result it awaits, and the test
    // server miscounts many concurrent unlocks ("Unbalanced lock and unlock calls").
    for (const r of runs) {
      const ended = await Promise.race([r.handle.result(), delay(60_000).then(() => undefined)]);
      if (!ended) throw new Error(`${r.handle.workflowId} did not end; table ${JSON.stringify(await table(s))}`);
      expect(ended.status).toBe('succeeded');
    }
    expect(order(s)).toEqual(runs.map((_, i) => `q-${i}`));
    expect(oneAtATime(s)).toBe(true);
    const d = await manager(s).describe();
    expect(d.runId).not.toBe(firstRunId); // it continued as new on the way
    expect(d.status.name).toBe('RUNNING');
    expect((await table(s)).hosts).toEqual({});
  });
}, 300_000);
