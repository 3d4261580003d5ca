// Test harness (Node side). What the alert guard's tests share: a runbook with an alert rule, deliveries as the
// receiver sends them (Update-with-Start), the guard's control update, and a wait for a remediation's end that
// the guard has heard of. The guards a test started are terminated after it.
import { WithStartWorkflowOperation, type Client } from '@temporalio/client';
import { alertLimits } from '../../dsl/alert-rule';
import type { alertGuard } from '../../workflows/alert-guard';
import { guardId, type AlertDelivery, type GuardAnswer, type GuardControl } from '../../workflows/guard-state';
import { controlGuardUpdate, deliverAlertUpdate, guardStatusQuery, stateQuery } from '../../workflows/messages';
import { eventually, resultOf, runbookYaml, type Session, type useTimeSkipping } from './time-skipping';

export type Limits = Parameters<typeof alertLimits>[0]['limits'];

/** The helpers, bound to a test file's environment (`useTimeSkipping`) and its fixture's host names. */
export function guardHelpers(wf: ReturnType<typeof useTimeSkipping>, hosts: readonly string[] = ['host-1']) {
  /** A runbook of this session with an alert rule; its step is `touch`, its targets the `hosts` param. */
  function guarded(s: Session, label: string, limits: Limits = {}, extra = '', risk: 'low' | 'high' = 'low') {
    const name = `${s.prefix}${label}`;
    wf.fixture.runbook(
      runbookYaml(
        name,
        `
params:
  hosts: { type: targets, default: host:${hosts[0]} }
targets: \${{ params.hosts }}
${extra}
steps:
  - id: touch
    ssh: { run: 'touch /tmp/fixed' }
on:
  alert:
    match: { alertname: Down }
`,
        risk,
      ),
    );
    return { name, limits: alertLimits({ match: { alertname: 'Down' }, limits }) };
  }

  function delivery(
    limits: AlertDelivery['limits'],
    fingerprint: string,
    more: { startsAt?: string; targets?: string[]; status?: 'firing' | 'resolved'; refused?: string[] } = {},
  ): AlertDelivery {
    const targets = more.targets ?? [hosts[0]!];
    return {
      alert: {
        fingerprint,
        status: more.status ?? 'firing',
        startsAt: more.startsAt ?? '2026-11-28T00:00:00Z',
        labels: { alertname: 'Down', instance: targets[0] ?? '' },
        annotations: {},
        source: 'alertmanager',
      },
      contentHash: 'test',
      params: { hosts: targets.map((t) => `host:${t}`).join(',') },
      targets,
      limits,
      ...(more.refused ? { refused: more.refused } : {}),
    };
  }

  /** Guards this file started (they run until terminated). */
  const guards = new Set<string>();

  function startGuard(s: Session, runbook: string, historyLimit?: number) {
    guards.add(guardId(runbook));
    return new WithStartWorkflowOperation<typeof alertGuard>('alertGuard', {
      workflowId: guardId(runbook),
      taskQueue: s.taskQueue,
      args: [{ runbook, historyLimit, reconcileMs: historyLimit ? 1000 : undefined }],
      workflowIdConflictPolicy: 'USE_EXISTING',
    });
  }

  const client = (): Client => wf.env.client;

  async function deliver(s: Session, runbook: string, d: AlertDelivery, historyLimit?: number): Promise<GuardAnswer> {
    const [answer] = await client().workflow.executeUpdateWithStart(deliverAlertUpdate, {
      args: [[d]],
      startWorkflowOperation: startGuard(s, runbook, historyLimit),
    });
    return answer!;
  }

  function control(s: Session, runbook: string, c: GuardControl) {
    return client().workflow.executeUpdateWithStart(controlGuardUpdate, {
      args: [c],
      startWorkflowOperation: startGuard(s, runbook),
    });
  }

  /** Waits for the remediation `workflowId` to end; returns its final status. */
  async function ended(workflowId: string): Promise<string> {
    const h = client().workflow.getHandle(workflowId);
    await resultOf(wf.env, h).catch(() => undefined);
    // The run tells its guard that it ended (a signal): what the test asks the guard next must see that.
    const guard = (await h.describe()).parentExecution?.workflowId;
    if (guard)
      await eventually(
        async () =>
          // A query that fails (the time-skipping server's replays are not to be trusted) is asked again.
          await client()
            .workflow.getHandle(guard)
            .query(guardStatusQuery)
            .then((st) => !st.active.some((a) => a.workflowId === workflowId))
            .catch(() => false),
        'the guard to hear the run ended',
      );
    return (await h.query(stateQuery)).status;
  }

  afterEach(async () => {
    // Guards run until terminated: end this test's so the worker's shutdown is not kept waiting.
    for (const id of guards)
      await client()
        .workflow.getHandle(id)
        .terminate('test over')
        .catch(() => undefined);
    guards.clear();
  });
  return { guarded, delivery, deliver, control, ended, client, startGuard };
}
