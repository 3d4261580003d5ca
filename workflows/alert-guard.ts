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
import { Type, type Static } from '@sinclair/typebox';
import type { Activities } from '../activities';
import type { WorkflowAuditEvent } from '../audit/events';
import { inputProblems, type RunbookInput } from '../dsl/run-input';
import { runDetails, runSummary } from '../common/run-metadata';
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
  AlertDeliveriesSchema,
  control,
  decide,
  guardId,
  GuardControlSchema,
  GuardStateSchema,
  guardStatus,
  newGuardState,
  carryOver,
  sanitize,
  runEnded,
  startRefused,
  type AlertDelivery,
  type Effect,
  type GuardAnswer,
  type GuardEscalation,
  type GuardRecord,
} from './guard-state';
import { countAlertAnswer, countAuditFailure } from './metrics';

const GuardInputSchema = Type.Object(
  {
    runbook: Type.String({ pattern: '^[a-z][a-z0-9-]{0,127}$' }),
    state: Type.Optional(GuardStateSchema),
    /** Continue as new past this many history events. @default 4000 */
    historyLimit: Type.Optional(Type.Integer({ minimum: 50, maximum: 40_000 })),
    /** How often to ask how remediations it no longer awaits ended, in ms. @default 60000 */
    reconcileMs: Type.Optional(Type.Integer({ minimum: 1000, maximum: 3600_000 })),
  },
  { additionalProperties: false },
);

/** Continue as new past this many events (the server suggests it too), so replays stay short. */
const MAX_HISTORY = 4000;

const { audit } = proxyLocalActivities<Activities>(ACTIVITY_OPTIONS.audit);
const { escalate } = proxyActivities<Activities>(ACTIVITY_OPTIONS.escalate);
const { remediationStatus } = proxyActivities<Activities>(ACTIVITY_OPTIONS.notify);

/** How often a guard asks how remediations it no longer awaits have ended. */
const RECONCILE_MS = 60_000;

function refuse(problems: string[], what: string): void {
  if (problems.length)
    throw ApplicationFailure.create({
      type: FAILURES.inputInvalid,
      nonRetryable: true,
      message: `The ${what} is invalid:\n${problems.join('\n')}`,
    });
}

export async function alertGuard(input: Static<typeof GuardInputSchema>): Promise<void> {
  refuse(inputProblems(GuardInputSchema, input), 'alert guard input');
  const info = workflowInfo();
  if (info.workflowId !== guardId(input.runbook))
    refuse(
      [`workflow id: the alert guard of ${input.runbook} has the id ${guardId(input.runbook)}`],
      'alert guard input',
    );
  const state = input.state ? sanitize(input.state, Date.now()) : newGuardState(input.runbook);
  // Escalations a previous run of this guard had not delivered when it continued as new.
  const effects: Effect[] = (state.unsent ?? []).map((escalation) => ({ kind: 'escalate', escalation }));
  state.unsent = undefined;
  let contentHash = '';
  /** Escalations being delivered (their activity retries for up to an hour); carried over by continue-as-new. */
  const sending = new Set<GuardEscalation>();

  /** Remediations this run started (it awaits their results). */
  const tracked = new Set<string>();
  const track = (workflowId: string, runId: string, result: Promise<unknown>) => {
    tracked.add(workflowId);
    const done = result.then(
      (r) => (r as { status?: string } | undefined)?.status ?? 'succeeded',
      (err: unknown) => endStatus(err),
    );
    void done.then((status) => effects.push(...runEnded(state, workflowId, runId, status, Date.now())));
  };

  /** Starts the run a decision names; a resolution that came while it was starting is passed on once it runs. */
  const start = async (d: AlertDelivery, answer: GuardAnswer, workflowId: string, fingerprint: string) => {
    let result: GuardAnswer;
    let runId: string | undefined;
    try {
      const input: RunbookInput = {
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
      };
      // What the UI shows of the remediation from its start: runbook, params (secret-looking ones masked), the alert.
      const child = await startChild<typeof runbook>('runbook', {
        workflowId,
        args: [input],
        staticSummary: runSummary(input),
        staticDetails: runDetails(input),
        parentClosePolicy: ParentClosePolicy.ABANDON,
        workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
      });
      runId = child.firstExecutionRunId;
      const incident = state.incidents[fingerprint];
      if (incident?.workflowId === workflowId) incident.runId = runId;
      track(workflowId, runId, child.result());
      result = { ...answer, runId };
    } catch (err) {
      // Its id is taken by a remediation still running (started before this guard continued as new).
      log.info('remediation already running', { workflowId, error: (err as Error).message });
      result = startRefused(state, fingerprint);
      countAlertAnswer(state.runbook, result);
    }
    const incident = state.incidents[fingerprint];
    if (incident?.resolvePending) {
      incident.resolvePending = undefined;
      effects.push({ kind: 'resolve-run', workflowId, runId });
    }
    return result;
  };

  setHandler(
    deliverAlertUpdate,
    async (batch) => {
      // Decided in order, at once (the state is never seen half-way); the runs they start are started together.
      const now = Date.now();
      const pending = batch.map((d) => {
        contentHash = d.contentHash;
        const decision = decide(state, d, now);
        countAlertAnswer(state.runbook, decision.answer);
        effects.push(...decision.effects);
        return decision.start
          ? start(d, decision.answer, decision.start.workflowId, decision.start.fingerprint)
          : Promise.resolve(decision.answer);
      });
      return Promise.all(pending);
    },
    { validator: (batch) => refuse(inputProblems(AlertDeliveriesSchema, batch), 'alert delivery') },
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
        // One activity per target, so a target that keeps failing never makes the other post twice.
        const targets = e.escalation.target ? [e.escalation.target] : (['slack', 'pagerduty'] as const);
        for (const target of targets) {
          const esc = { ...e.escalation, target };
          sending.add(esc);
          void escalate({
            ...esc,
            runbook: state.runbook,
            alertname: esc.labels?.alertname,
            dedupKey: `runbook:${state.runbook}:${esc.fingerprint}`,
            severity: esc.kind === 'remediation-failed' || esc.kind === 'breaker-open' ? 'critical' : 'error',
          })
            .catch((err: unknown) => {
              state.counters.escalationErrors += 1;
              state.lastEscalationError = (err as Error).message.slice(0, 500);
              log.error('escalation failed', { error: state.lastEscalationError });
            })
            .finally(() => sending.delete(esc));
        }
      } else if (e.kind === 'resolve-run') {
        await getExternalWorkflowHandle(e.workflowId, e.runId)
          .signal(alertResolvedSignal, { at: new Date().toISOString() })
          .catch((err: unknown) => log.info('resolved run not signalled', { error: (err as Error).message }));
      }
    }
  };

  const longHistory = () =>
    workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > (input.historyLimit ?? MAX_HISTORY);
  // Remediations started before this run (carried over continue-as-new) are not awaited here: while any is active,
  // ask every minute how they ended (one that was terminated never signals its guard).
  const untracked = () =>
    Object.values(state.incidents).filter((i) => i.active && i.workflowId && !tracked.has(i.workflowId));
  for (;;) {
    // Effects are performed as they come, also while a continue-as-new waits for running handlers.
    const ready = () => effects.length > 0 || (longHistory() && allHandlersFinished());
    // The clock is kept in the state, so a guard that keeps continuing as new (a flood) still asks on time.
    const every = input.reconcileMs ?? RECONCILE_MS;
    const due = () => Math.max(0, (state.reconciledAt ?? 0) + every - Date.now());
    const woke = untracked().length
      ? due() > 0 && (await condition(ready, due()))
      : await condition(ready).then(() => true);
    if (!woke) {
      state.reconciledAt = Date.now();
      const runs = untracked().map((i) => ({ workflowId: i.workflowId!, runId: i.runId }));
      const ended = await remediationStatus({ runs }).catch((err: unknown) => {
        log.warn('remediation status unknown', { error: (err as Error).message });
        return [];
      });
      for (const r of ended) effects.push(...runEnded(state, r.workflowId, r.runId, r.status, Date.now()));
      continue;
    }
    if (effects.length) {
      await perform(effects.splice(0));
      continue;
    }
    // Escalations still being delivered go on in the next run (their activities here are abandoned).
    state.unsent = carryOver(sending);
    return await continueAsNew<typeof alertGuard>({ ...input, state });
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
    countAuditFailure(runbookName, records.length);
  }
}
