// Workflow (time-skipping test server, stubbed activities): one step's control flow. `retry` gives each logical
// attempt its own record key (PATH#2, ...) and waits its backoff; a lost connection is retried by Temporal on the
// same key; `until` polls (PATH@1, @2, ...) until the condition holds or fails with UntilTimeout.
import { FAILURES } from '../../common/failure-types';
import { runbookYaml, useTimeSkipping } from '../harness/time-skipping';
import type { Script } from '../harness/time-skipping-stubs';

const wf = useTimeSkipping(['host-1', 'host-2', 'host-3']);

/** Exit codes (or outcomes) per record key; keys not listed exit 0. */
const byKey =
  (outcomes: Record<string, ReturnType<Script>>): Script =>
  ({ key }) =>
    outcomes[key];

const retrying = (name: string) =>
  runbookYaml(
    name,
    `
targets: host:host-1
steps:
  - id: flaky
    ssh: { run: 'flaky' }
    retry: { attempts: 3, backoff: 30s }
  - id: after
    ssh: { run: 'after' }
`,
  );

test('retry: each attempt has its own record key, the backoff doubles, and the run goes on after a success', async () => {
  const run = await wf.run(retrying('retry-then-ok'), {
    script: byKey({ 'steps[0]': { exit: 1 }, 'steps[0]#2': { exit: 1 } }),
  });
  expect(run.result!.status).toBe('succeeded');
  expect(run.stubs.keys()).toEqual(['steps[0]', 'steps[0]#2', 'steps[0]#3', 'steps[1]']);
  expect(run.stubs.calls.map((c) => c.attempt)).toEqual([1, 1, 1, 1]); // logical attempts, not activity retries
  const failed = run.stubs.audit.filter((r) => r.kind === 'step' && r.status === 'failed');
  expect(failed.map((r) => [r.by, r.key])).toEqual([
    ['workflow', 'steps[0]'],
    ['workflow', 'steps[0]#2'],
  ]);
  expect(run.stubs.audit.filter((r) => r.status === 'succeeded' && r.kind === 'step').map((r) => r.key)).toEqual([
    'steps[0]#3',
    'steps[1]',
  ]);
  // 30 s after the first failure, then 60 s: the waits are workflow time, skipped by the test server.
  expect(Date.parse(failed[1]!.time!) - Date.parse(failed[0]!.time!)).toBeGreaterThanOrEqual(30_000);
  expect(run.workflowMs).toBeGreaterThanOrEqual(90_000);
  expect(run.workflowMs).toBeLessThan(100_000);
});

test("retry: when every attempt fails, the step fails with the last attempt's error and later steps never run", async () => {
  const run = await wf.run(retrying('retry-exhausted'), {
    script: ({ key }) => ({ exit: key.endsWith('#3') ? 7 : 1 }),
  });
  expect(run.stubs.keys()).toEqual(['steps[0]', 'steps[0]#2', 'steps[0]#3']);
  expect(run.result!.hosts['host-1']).toMatchObject({ state: 'failed', steps: {} });
  expect(run.result!.hosts['host-1']!.error).toMatch(/^The command on host-1 exited with 7 \(expected 0\)/);
  expect(run.failure?.type).toBe(FAILURES.runbookFailed);
});

test('retry does not repeat a final engine failure (a host key mismatch): one attempt, failed with its type', async () => {
  const run = await wf.run(retrying('retry-final'), {
    script: byKey({ 'steps[0]': { error: FAILURES.hostKey, message: 'host key changed' } }),
  });
  expect(run.stubs.keys()).toEqual(['steps[0]']);
  expect(run.result!.hosts['host-1']!.error).toBe('host key changed');
});

test('a lost connection is retried by Temporal on the same record key (the command re-attaches, it is not re-run)', async () => {
  const yaml = runbookYaml(
    'lost-connection',
    `
targets: host:host-1
steps:
  - id: only
    ssh: { run: 'work' }
`,
  );
  const run = await wf.run(yaml, {
    script: ({ attempt }) => (attempt === 1 ? { error: FAILURES.sshConnectionLost, retryable: true } : undefined),
  });
  expect(run.result!.status).toBe('succeeded');
  expect(run.stubs.calls.map((c) => [c.key, c.attempt, c.outcome])).toEqual([
    ['steps[0]', 1, 'error'],
    ['steps[0]', 2, 'succeeded'],
  ]);
});

test('a step group retried after a lost connection: every step of the group keeps its record key', async () => {
  const yaml = runbookYaml(
    'lost-in-group',
    `
targets: host:host-1
steps:
  - id: one
    ssh: { run: 'one' }
  - id: two
    ssh: { run: 'two' }
`,
  );
  const run = await wf.run(yaml, {
    script: ({ key, attempt }) =>
      key === 'steps[1]' && attempt === 1 ? { error: FAILURES.sshConnectionLost, retryable: true } : undefined,
  });
  expect(run.result!.status).toBe('succeeded');
  expect(run.stubs.calls.map((c) => [c.activity, c.key, c.attempt])).toEqual([
    ['sshSteps', 'steps[0]', 1],
    ['sshSteps', 'steps[1]', 1],
    ['sshSteps', 'steps[0]', 2],
    ['sshSteps', 'steps[1]', 2],
  ]);
});

const polling = (name: string, until: string, retry = '') =>
  runbookYaml(
    name,
    `
targets: host:host-1
steps:
  - id: wait
    ssh: { run: 'check' }
    outputs: { state: { from: stdout } }
    until: ${until}
    ${retry}
  - id: use
    ssh: { run: 'echo \${{ steps.wait.outputs.state }}' }
`,
  );

test("until: polls every `every` (a failed command is a poll too) until the condition holds; the last poll's outputs count", async () => {
  const yaml = polling('poll-ready', '{ every: 10s, timeout: 5m, condition: \'result.outputs.state == "ready"\' }');
  const run = await wf.run(yaml, {
    script: byKey({
      'steps[0]@1': { exit: 1 },
      'steps[0]@2': { stdout: 'starting\n' },
      'steps[0]@3': { stdout: 'ready\n' },
    }),
  });
  expect(run.result!.status).toBe('succeeded');
  expect(run.stubs.keys()).toEqual(['steps[0]@1', 'steps[0]@2', 'steps[0]@3', 'steps[1]']);
  expect(run.stubs.calls[3]!.command).toBe('echo ready');
  expect(run.workflowMs).toBeGreaterThanOrEqual(20_000);
  expect(run.workflowMs).toBeLessThan(30_000);
});

test('until with retry: a failed poll is retried under its own key (PATH@1#2) before the next poll', async () => {
  const yaml = polling(
    'poll-retry',
    '{ every: 10s, timeout: 5m, condition: \'result.outputs.state == "ready"\' }',
    'retry: { attempts: 2, backoff: 1s }',
  );
  const run = await wf.run(yaml, {
    script: byKey({
      'steps[0]@1': { exit: 1 },
      'steps[0]@1#2': { stdout: 'starting' },
      'steps[0]@2': { stdout: 'ready' },
    }),
  });
  expect(run.result!.status).toBe('succeeded');
  expect(run.stubs.keys()).toEqual(['steps[0]@1', 'steps[0]@1#2', 'steps[0]@2', 'steps[1]']);
});

test('until: a condition that never holds fails the step with UntilTimeout once the next poll would be past the timeout', async () => {
  const yaml = polling('poll-timeout', '{ every: 10s, timeout: 65s, condition: \'result.outputs.state == "ready"\' }');
  const run = await wf.run(yaml, { script: () => ({ stdout: 'starting' }) });
  // Polls at 0, 10, ..., 60 s; the one after would be at 70 s, past 65 s.
  expect(run.stubs.keys()).toEqual([1, 2, 3, 4, 5, 6, 7].map((n) => `steps[0]@${n}`));
  expect(run.result!.hosts['host-1']!.error).toBe(
    'step "wait" did not succeed within 65s: condition `result.outputs.state == "ready"` was false',
  );
  const finished = run.stubs.audit.find((r) => r.kind === 'run.finished');
  expect(finished).toMatchObject({
    status: 'failed',
    detail: { hosts: { 'host-1': { state: 'failed', error: run.result!.hosts['host-1']!.error } } },
  });
  expect(run.workflowMs).toBeGreaterThanOrEqual(60_000);
  expect(run.workflowMs).toBeLessThan(70_000);
});

test('until without a condition: polls until the command succeeds; the failure text of the last poll is kept on timeout', async () => {
  const yaml = polling('poll-exit', '{ every: 20s, timeout: 50s }');
  const run = await wf.run(yaml, { script: () => ({ exit: 3, stderr: 'not yet' }) });
  expect(run.stubs.keys()).toEqual(['steps[0]@1', 'steps[0]@2', 'steps[0]@3']);
  expect(run.result!.hosts['host-1']!.error).toBe(
    'step "wait" did not succeed within 50s: The command on host-1 exited with 3 (expected 0): not yet',
  );
});

test('prepare is the real one: params that do not fit their types fail the run before any step, with the located message', async () => {
  const yaml = runbookYaml(
    'typed-params',
    `
params:
  count: { type: integer, min: 1, description: how many }
targets: host:host-1
steps:
  - id: use
    ssh: { run: 'echo \${{ params.count }}' }
`,
  );
  const run = await wf.run(yaml, { params: { count: 'many' } });
  expect(run.failure?.type).toBe(FAILURES.paramsInvalid);
  expect(run.failure?.message).toMatch(/^Invalid params for typed-params:\nparams\.count: .+ \[RB13\d\d\]$/);
  expect(run.stubs.calls).toEqual([]);
  expect(run.stubs.audit.map((r) => [r.kind, r.status])).toEqual([['run.finished', 'rejected']]);

  const ok = await wf.run(yaml, { params: { count: '3' } });
  expect(ok.result!.status).toBe('succeeded');
  expect(ok.stubs.calls.map((c) => c.command)).toEqual(['echo 3']);
});

test('a step with its own targets runs for every run target: each has its own record key on the shared host', async () => {
  // Two web hosts drained one after the other on one load balancer: the second drain is a step of its own, not
  // the first one's record found again.
  const run = await wf.run(
    runbookYaml(
      'drain-each',
      `
targets: 'host:host-1,host:host-2'
strategy: { type: rolling, batch: 1 }
steps:
  - id: drain
    targets: host:host-3
    ssh: { run: 'drain \${{ origin.name }}' }
    rollback:
      - id: ready
        targets: host:host-3
        ssh: { run: 'ready \${{ origin.name }}' }
  - id: restart
    ssh: { run: 'restart' }
`,
    ),
    { script: ({ host, key }) => (host === 'host-2' && key === 'steps[1]' ? { exit: 1 } : undefined) },
  );
  expect(run.stubs.calls.map((c) => [c.host, c.key, c.command])).toEqual([
    ['host-3', 'steps[0]:host-1>host-3', 'drain host-1'],
    ['host-1', 'steps[1]', 'restart'],
    ['host-3', 'steps[0]:host-2>host-3', 'drain host-2'],
    ['host-2', 'steps[1]', 'restart'],
    ['host-3', 'steps[0].rollback[0]:host-2>host-3', 'ready host-2'],
  ]);
  const keys = run.stubs.audit.filter((r) => r.kind === 'step' || r.kind === 'rollback').map((r) => r.key);
  expect(keys).toEqual(expect.arrayContaining(['steps[0]:host-1>host-3', 'steps[0]:host-2>host-3']));
});
