// Workflow side (deterministic). The alert guard of one runbook (id `alert-guard:RUNBOOK`): the receiver sends it
// each alert matching the runbook's rule with Update-with-Start, and it answers once the decision is in its
// history, so a 2xx to Alertmanager means the run is durably started (or deduplicated, suppressed, refused).
// Decisions are guard-state.ts's; this file runs the remediations (child workflows that outlive the guard),
// records and escalates what the decisions owe, and carries its state over continue-as-new.
import {
  ApplicationFailure,
  ChildWorkflowFailure,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  ParentClosePolicy,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  startChild,
  TerminatedFailure,
  TimeoutFailure,
  workflowInfo,
  allHandlersFinished,
  WorkflowIdReusePolicy,
} from '@temporalio/workflow';
import { Type } from '@sinclair/typebox';
import type { Activities } from '../activities';
import type { WorkflowAuditEvent } from '../audit/events';
import { inputProblems } from '../dsl/run-input';
import { FAILURES } from '../common/failure-types';
import { ACTIVITY_OPTIONS } from './activity-options';
import {
  alertResolvedSignal,
  controlGuardUpdate,
  deliverAlertUpdate,
  guardStatusQuery,
  runEndedSignal,
} from './messages';
import type { runbook } from './runbook';
import {
  AlertDeliverySchema,
  control,
  decide,
  guardId,
  GuardControlSchema,
  GuardStateSchema,
  guardStatus,
  newGuardState,
  runEnded,
  startRefused,
  type Effect,
  type GuardRecord,
  type GuardState,
} from './guard-state';

const GuardInputSchema = Type.Object(
  {
    runbook: Type.String({ pattern: '^[a-z][a-z0-9-]{0,127}$' }),
    state: Type.Optional(GuardStateSchema),
    /** Continue as new past this many history events. @default 4000 */
    historyLimit: Type.Optional(Type.Integer({ minimum: 50, maximum: 40_000 })),
  },
  { additionalProperties: false },
);

/** Continue as new past this many events (the server suggests it too), so replays stay short. */
const MAX_HISTORY = 4000;

const { audit } = proxyLocalActivities<Activities>(ACTIVITY_OPTIONS.audit);
const { escalate } = proxyActivities<Activities>(ACTIVITY_OPTIONS.escalate);

function refuse(problems: string[], what: string): void {
  if (problems.length)
    throw ApplicationFailure.create({
      type: FAILURES.inputInvalid,
      nonRetryable: true,
      message: `The ${what} is invalid:\n${problems.join('\n')}`,
    });
}

export async function alertGuard(input: { runbook: string; state?: GuardState; historyLimit?: number }): Promise<void> {
  refuse(inputProblems(GuardInputSchema, input), 'alert guard input');
  const info = workflowInfo();
  if (info.workflowId !== guardId(input.runbook))
    refuse(
      [`workflow id: the alert guard of ${input.runbook} has the id ${guardId(input.runbook)}`],
      'alert guard input',
    );
  const state = input.state ?? newGuardState(input.runbook);
  const effects: Effect[] = [];
  let contentHash = '';
  const inflight = new Set<Promise<unknown>>();

  const track = (workflowId: string, runId: string, result: Promise<unknown>) => {
    const done = result.then(
      (r) => (r as { status?: string } | undefined)?.status ?? 'succeeded',
      (err: unknown) => endStatus(err),
    );
    void done.then((status) => effects.push(...runEnded(state, workflowId, runId, status, Date.now())));
  };

  setHandler(
    deliverAlertUpdate,
    async (d) => {
      contentHash = d.contentHash;
      const decision = decide(state, d, Date.now());
      effects.push(...decision.effects);
      if (!decision.start) return decision.answer;
      const { workflowId, fingerprint } = decision.start;
      try {
        const child = await startChild<typeof runbook>('runbook', {
          workflowId,
          args: [
            {
              runbook: state.runbook,
              params: d.params ?? {},
              initiator: fingerprint,
              trigger: 'alert',
              alert: {
                fingerprint,
                status: d.alert.status,
                source: d.alert.source,
                startsAt: d.alert.startsAt ?? null,
                labels: d.alert.labels,
                annotations: d.alert.annotations,
                generatorURL: d.alert.generatorURL ?? null,
              },
            },
          ],
          parentClosePolicy: ParentClosePolicy.ABANDON,
          workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
        });
        const incident = state.incidents[fingerprint];
        if (incident) incident.runId = child.firstExecutionRunId;
        track(workflowId, child.firstExecutionRunId, child.result());
        return { ...decision.answer, runId: child.firstExecutionRunId };
      } catch (err) {
        // Its id is taken by a remediation still running (started before this guard continued as new).
        log.info('remediation already running', { workflowId, error: (err as Error).message });
        return startRefused(state, fingerprint);
      }
    },
    { validator: (d) => refuse(inputProblems(AlertDeliverySchema, d), 'alert delivery') },
  );

  setHandler(
    controlGuardUpdate,
    (c) => {
      effects.push(...control(state, c, Date.now()));
      return guardStatus(state, Date.now());
    },
    { validator: (c) => refuse(inputProblems(GuardControlSchema, c), 'guard control') },
  );

  setHandler(guardStatusQuery, () => guardStatus(state, Date.now()));

  setHandler(runEndedSignal, (s) => {
    if (typeof s?.workflowId !== 'string' || typeof s.status !== 'string' || typeof s.runId !== 'string') return;
    effects.push(...runEnded(state, s.workflowId, s.runId, s.status.slice(0, 32), Date.now()));
  });

  const perform = async (batch: Effect[]) => {
    const records = batch.flatMap((e) => (e.kind === 'record' ? [e.record] : []));
    if (records.length) await recordAll(state.runbook, contentHash, records);
    for (const e of batch) {
      if (e.kind === 'escalate') {
        const p = escalate({
          ...e.escalation,
          runbook: state.runbook,
          alertname: e.escalation.labels?.alertname,
          dedupKey: `runbook:${state.runbook}:${e.escalation.fingerprint}`,
          severity:
            e.escalation.kind === 'remediation-failed' || e.escalation.kind === 'breaker-open' ? 'critical' : 'error',
        }).catch((err: unknown) => {
          state.counters.escalationErrors += 1;
          state.lastEscalationError = (err as Error).message.slice(0, 500);
          log.error('escalation failed', { error: state.lastEscalationError });
        });
        inflight.add(p);
        void p.then(() => inflight.delete(p));
      } else if (e.kind === 'resolve-run') {
        await getExternalWorkflowHandle(e.workflowId, e.runId)
          .signal(alertResolvedSignal, { at: new Date().toISOString() })
          .catch((err: unknown) => log.info('resolved run not signalled', { error: (err as Error).message }));
      }
    }
  };

  const longHistory = () =>
    workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > (input.historyLimit ?? MAX_HISTORY);
  for (;;) {
    await condition(() => effects.length > 0 || longHistory());
    if (effects.length) {
      await perform(effects.splice(0));
      continue;
    }
    await condition(() => allHandlersFinished() && inflight.size === 0);
    if (effects.length) continue;
    return await continueAsNew<typeof alertGuard>({ runbook: state.runbook, state, historyLimit: input.historyLimit });
  }
}

/** How a remediation ended, from the error its result threw. */
function endStatus(err: unknown): string {
  const cause = err instanceof ChildWorkflowFailure ? err.cause : err;
  if (isCancellation(cause)) return 'cancelled';
  if (cause instanceof TerminatedFailure) return 'terminated';
  if (cause instanceof TimeoutFailure) return 'timed-out';
  return 'failed';
}

async function recordAll(runbookName: string, contentHash: string, records: GuardRecord[]): Promise<void> {
  const time = new Date().toISOString();
  const events: WorkflowAuditEvent[] = records.map((r) => ({
    key: `alert#${r.seq}`,
    time,
    kind: r.kind,
    runbook: { name: runbookName, contentHash },
    initiator: { trigger: 'alert', id: r.fingerprint },
    status: r.status,
    error: r.error,
    detail: r.detail,
  }));
  try {
    await audit({ events });
  } catch (err) {
    log.error('audit write failed', { error: (err as Error).message, records: records.length });
  }
}
