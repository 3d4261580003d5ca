// Workflow (time-skipping test server, stubbed activities): rollback after a failure. The target's compensation
// stack runs newest first (the step rollbacks of completed steps, each with its own key PATH.rollback[i], then
// the runbook's `rollback[i]`), with the outputs known when the step completed; a failing rollback step is
// recorded and the rest still run; the failed step's own rollback and a target that never started do not run.
import { runbookYaml, useTimeSkipping } from '../harness/time-skipping';
import type { Script } from '../harness/time-skipping-stubs';

const wf = useTimeSkipping(['host-1', 'host-2']);

const layered = (name: string) =>
  runbookYaml(
    name,
    `
targets: host:host-1
steps:
  - id: s0
    ssh: { run: 'make' }
    outputs: { made: { from: stdout } }
    rollback:
      - id: r0
        ssh: { run: 'remove \${{ steps.s0.outputs.made }}' }
  - id: s1
    ssh: { run: 'change' }
    rollback:
      - id: r1a
        ssh: { run: 'revert change' }
      - id: r1b
        notify: { channel: oncall, message: 'reverted the change on \${{ target.name }}' }
  - id: s2
    ssh: { run: 'no undo' }
  - id: s3
    ssh: { run: 'fails' }
    rollback:
      - id: r3
        ssh: { run: 'never: s3 did not complete' }
  - id: s4
    ssh: { run: 'never reached' }
rollback:
  - id: g0
    ssh: { run: 'runbook undo 0' }
  - id: g1
    ssh: { run: 'runbook undo 1' }
`,
  );

const script =
  (more: Record<string, { exit: number }> = {}): Script =>
  ({ key }) => {
    if (key === 'steps[0]') return { stdout: 'thing-42\n' };
    if (key === 'steps[3]') return { exit: 2, stderr: 'nope' };
    return more[key];
  };

test("rollback runs newest first: step rollbacks of completed steps (their own keys), then the runbook's, all recorded", async () => {
  const run = await wf.run(layered('layered-undo'), { script: script() });
  expect(run.stubs.timeline).toEqual([
    'host-1 steps[0]',
    'host-1 steps[1]',
    'host-1 steps[2]',
    'host-1 steps[3]',
    // A step's two rollback steps were pushed in order, so the second runs first.
    'notify oncall: reverted the change on host-1',
    'host-1 steps[1].rollback[0]',
    'host-1 steps[0].rollback[0]',
    'host-1 rollback[1]',
    'host-1 rollback[0]',
  ]);
  expect(run.stubs.calls.find((c) => c.key === 'steps[0].rollback[0]')!.command).toBe('remove thing-42');
  expect(run.result!.hosts['host-1']).toMatchObject({
    state: 'rolled-back',
    rollbackErrors: [],
    steps: { s0: 'succeeded', s1: 'succeeded', s2: 'succeeded' },
  });
  expect(run.result!.hosts['host-1']!.error).toMatch(/^The command on host-1 exited with 2 \(expected 0\): nope/);
  const rollbackRecords = run.stubs.audit.filter((r) => r.kind === 'rollback').map((r) => [r.by, r.key, r.status]);
  expect(rollbackRecords).toEqual([
    ['workflow', 'steps[1].rollback[1]', 'succeeded'],
    ['activity', 'steps[1].rollback[0]', 'succeeded'],
    ['activity', 'steps[0].rollback[0]', 'succeeded'],
    ['activity', 'rollback[1]', 'succeeded'],
    ['activity', 'rollback[0]', 'succeeded'],
  ]);
  expect(run.result).toMatchObject({ status: 'failed', failures: 1 });
});

test('a failing rollback step is recorded in rollbackErrors and the rest of the rollback still runs', async () => {
  const run = await wf.run(layered('undo-fails'), {
    script: script({ 'steps[1].rollback[0]': { exit: 9 }, 'rollback[1]': { exit: 5 } }),
  });
  expect(run.stubs.keys()).toEqual([
    'steps[0]',
    'steps[1]',
    'steps[2]',
    'steps[3]',
    'steps[1].rollback[0]',
    'steps[0].rollback[0]',
    'rollback[1]',
    'rollback[0]',
  ]);
  expect(run.result!.hosts['host-1']!.rollbackErrors).toEqual([
    'r1a: The command on host-1 exited with 9 (expected 0): ',
    'g1: The command on host-1 exited with 5 (expected 0): ',
  ]);
  expect(run.result!.hosts['host-1']!.state).toBe('rolled-back');
  expect(run.stubs.audit.filter((r) => r.kind === 'rollback' && r.status === 'failed').map((r) => r.key)).toEqual([
    'steps[1].rollback[0]',
    'rollback[1]',
  ]);
});

test('each target rolls back only its own completed work; a target that succeeded is not rolled back', async () => {
  const yaml = runbookYaml(
    'per-target-undo',
    `
targets: 'host:host-1,host:host-2'
strategy: { type: rolling, batch: 1, maxFailures: 1 }
steps:
  - id: make
    ssh: { run: 'make' }
    rollback:
      - id: unmake
        ssh: { run: 'unmake' }
  - id: check
    ssh: { run: 'check' }
`,
  );
  const run = await wf.run(yaml, {
    script: ({ host, key }) => (host === 'host-2' && key === 'steps[1]' ? { exit: 1 } : undefined),
  });
  expect(run.stubs.timeline).toEqual([
    'host-1 steps[0]',
    'host-1 steps[1]',
    'host-2 steps[0]',
    'host-2 steps[1]',
    'host-2 steps[0].rollback[0]',
  ]);
  expect(run.result).toMatchObject({
    status: 'degraded',
    hosts: { 'host-1': { state: 'succeeded' }, 'host-2': { state: 'rolled-back' } },
  });
});

test("a step group's completed steps push their rollbacks; the failed step's do not run; the runbook's rollback runs last", async () => {
  const yaml = runbookYaml(
    'group-undo',
    `
targets: host:host-1
steps:
  - id: a
    ssh: { run: 'a' }
  - id: b
    ssh: { run: 'b' }
    rollback:
      - id: undo_b
        ssh: { run: 'undo b' }
  - id: c
    ssh: { run: 'c' }
  - id: d
    ssh: { run: 'd' }
rollback:
  - id: tell
    notify: { channel: oncall, message: 'rolled back \${{ target.name }}' }
`,
  );
  // a and b form a step group (a step with rollback steps ends one); d fails.
  const run = await wf.run(yaml, { script: ({ key }) => (key === 'steps[3]' ? { exit: 1 } : undefined) });
  expect(run.stubs.calls.slice(0, 2).map((c) => [c.activity, c.key])).toEqual([
    ['sshSteps', 'steps[0]'],
    ['sshSteps', 'steps[1]'],
  ]);
  expect(run.stubs.keys()).toEqual(['steps[0]', 'steps[1]', 'steps[2]', 'steps[3]', 'steps[1].rollback[0]']);
  expect(run.stubs.timeline.slice(-2)).toEqual(['host-1 steps[1].rollback[0]', 'notify oncall: rolled back host-1']);
  expect(run.result!.hosts['host-1']).toMatchObject({
    state: 'rolled-back',
    steps: { a: 'succeeded', b: 'succeeded', c: 'succeeded' },
  });
});
