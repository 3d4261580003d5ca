// Node side. `runbook logs` reads a run's history: the prepared runbook (step ids, targets), each SSH step that
// ended (a regular activity's result, a local activity's marker, each step of a step group), the sub-runbooks it
// started, and how it ended. Payloads are decoded with the client's data converter, so encrypted history works
// with the same keys as the worker's.
import { ApplicationFailure, type LoadedDataConverter } from '@temporalio/common';
import {
  decodeFromPayloadsAtIndex,
  decodeOptionalFailureToOptionalError,
} from '@temporalio/common/lib/internal-non-workflow';
import type { temporal } from '@temporalio/proto';
import { UserError } from '../common/errors';
import type { StepAt } from '../activities';
import type { PreparedRun } from '../activities/prepare';
import type { Closed, FinishedStep, StepResultView } from './logs-print';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

/** Exit codes by outcome, as `run --wait` has them. */
const EXIT = { succeeded: 0, degraded: 3, failed: 1, cancelled: 130, blocked: 4 } as const;

/** The SDK's local activity marker: its data names the activity (the input is not recorded). */
const LOCAL_ACTIVITY_MARKER = 'core_local_activity';

/**
 * Reads a run's history, page by page as it comes: the prepared runbook (step ids), each SSH step that ended, the
 * sub-runbooks started, and how the run ended. Payloads are decoded with the client's converter.
 */
export class HistoryReader {
  /** Activities scheduled, by event id: their type and (for SSH steps) which step on which host. */
  private readonly scheduled = new Map<string, { type: string; activityId: string; at?: StepAt }>();
  prepared?: PreparedRun;
  closed?: Closed;
  /** Local step results from engines that did not record their host. */
  unattributed = 0;
  readonly children: string[] = [];

  constructor(
    private readonly converter: LoadedDataConverter,
    private readonly workflowType: string,
  ) {}

  /** Which step a pending activity runs, from its scheduled event. */
  stepOfActivity(activityId: string): StepAt | undefined {
    for (const s of this.scheduled.values()) if (s.activityId === activityId) return s.at;
    return undefined;
  }

  async read(events: HistoryEvent[]): Promise<FinishedStep[]> {
    const done: FinishedStep[] = [];
    for (const e of events) done.push(...(await this.event(e)));
    return done;
  }

  private async event(e: HistoryEvent): Promise<FinishedStep[]> {
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (scheduled) {
      const type = scheduled.activityType?.name ?? '';
      let at: StepAt | undefined;
      if (type === 'sshStep') {
        const input = await this.decode<{ target?: { name?: string }; key?: { stepPath?: string } }>(scheduled.input);
        if (input?.target?.name && input.key?.stepPath) at = { host: input.target.name, step: input.key.stepPath };
      }
      this.scheduled.set(String(e.eventId), { type, activityId: scheduled.activityId ?? '', at });
      return [];
    }
    const completed = e.activityTaskCompletedEventAttributes;
    if (completed) {
      const s = this.scheduled.get(String(completed.scheduledEventId));
      this.scheduled.delete(String(completed.scheduledEventId));
      if (s?.type === 'prepare') this.prepared = await this.decode<PreparedRun>(completed.result);
      if (s?.type !== 'sshStep') return [];
      const result = await this.decode<StepResultView>(completed.result);
      const at = s.at ?? result?.at;
      return at ? [{ at, status: 'succeeded', result }] : [];
    }
    const ended =
      e.activityTaskFailedEventAttributes ??
      e.activityTaskTimedOutEventAttributes ??
      e.activityTaskCanceledEventAttributes;
    if (ended) {
      const s = this.scheduled.get(String(ended.scheduledEventId));
      this.scheduled.delete(String(ended.scheduledEventId));
      if (s?.type !== 'sshStep') return [];
      const f = 'failure' in ended && ended.failure ? await this.failure(ended.failure) : undefined;
      const at = s.at ?? f?.result?.at;
      const status = e.activityTaskFailedEventAttributes
        ? 'failed'
        : e.activityTaskTimedOutEventAttributes
          ? 'timed out'
          : 'cancelled';
      return at ? [{ at, status, result: f?.result, error: f?.message }] : [];
    }
    const marker = e.markerRecordedEventAttributes;
    if (marker?.markerName === LOCAL_ACTIVITY_MARKER) return this.localActivity(marker);
    const child = e.childWorkflowExecutionStartedEventAttributes;
    if (child?.workflowType?.name === 'runbook' && child.workflowExecution?.workflowId)
      this.children.push(child.workflowExecution.workflowId);
    await this.close(e);
    return [];
  }

  /** A local activity's marker: an SSH step (its result says which), a step group (each of its steps), or prepare. */
  private async localActivity(marker: temporal.api.history.v1.IMarkerRecordedEventAttributes): Promise<FinishedStep[]> {
    const data = await this.decode<{ activity_type?: string; activityType?: string }>(marker.details?.data);
    const type = data?.activity_type ?? data?.activityType;
    if (type === 'prepare' && !marker.failure) this.prepared = await this.decode<PreparedRun>(marker.details?.result);
    if (type !== 'sshStep' && type !== 'sshSteps') return [];
    const f = marker.failure ? await this.failure(marker.failure) : undefined;
    if (type === 'sshStep') {
      const result = f ? f.result : await this.decode<StepResultView>(marker.details?.result);
      if (!result?.at) return f ? [] : this.unknown();
      return [{ at: result.at, status: f ? 'failed' : 'succeeded', result, error: f?.message }];
    }
    if (f) return []; // a group that failed as a whole (not one of its steps) returned nothing
    const group = await this.decode<{
      host?: string;
      done?: { path: string; status: string; result?: StepResultView }[];
      failed?: { path: string; message: string; result?: StepResultView };
    }>(marker.details?.result);
    if (!group?.host) return this.unknown();
    const host = group.host;
    const steps: FinishedStep[] = (group.done ?? [])
      .filter((d) => d.status === 'succeeded')
      .map((d) => ({ at: { host, step: d.path }, status: 'succeeded', result: d.result }));
    if (group.failed)
      steps.push({
        at: { host, step: group.failed.path },
        status: 'failed',
        result: group.failed.result,
        error: group.failed.message,
      });
    return steps;
  }

  private unknown(): [] {
    this.unattributed++;
    return [];
  }

  private async close(e: HistoryEvent): Promise<void> {
    if (e.workflowExecutionCompletedEventAttributes) {
      const r = await this.decode<{ status?: keyof typeof EXIT; exitCode?: number }>(
        e.workflowExecutionCompletedEventAttributes.result,
      );
      if (this.workflowType === 'runCommand') {
        const ok = r?.exitCode === 0;
        this.closed = { status: ok ? 'succeeded' : `failed (exit ${r?.exitCode ?? '?'})`, exitCode: ok ? 0 : 1 };
      } else {
        const status = r?.status && r.status in EXIT ? r.status : 'failed';
        this.closed = { status, exitCode: EXIT[status] };
      }
    } else if (e.workflowExecutionFailedEventAttributes) this.closed = { status: 'failed', exitCode: 1 };
    else if (e.workflowExecutionCanceledEventAttributes) this.closed = { status: 'cancelled', exitCode: 130 };
    else if (e.workflowExecutionTerminatedEventAttributes) this.closed = { status: 'terminated', exitCode: 1 };
    else if (e.workflowExecutionTimedOutEventAttributes) this.closed = { status: 'timed out', exitCode: 1 };
    else if (e.workflowExecutionContinuedAsNewEventAttributes)
      this.closed = { status: 'continued as new', exitCode: 1 };
  }

  /** A failure's message and the step result it carries (a failed command's exit code and output). */
  private async failure(
    failure: temporal.api.failure.v1.IFailure,
  ): Promise<{ message: string; result?: StepResultView }> {
    const err = await decodeOptionalFailureToOptionalError(this.converter, failure).catch(codecError);
    let app: unknown = err;
    while (app instanceof Error && !(app instanceof ApplicationFailure)) app = app.cause;
    const detail = app instanceof ApplicationFailure ? app.details?.[0] : undefined;
    return {
      message: (app instanceof Error ? app : err)?.message ?? 'failed',
      result: detail && typeof detail === 'object' ? (detail as StepResultView) : undefined,
    };
  }

  private async decode<T>(payloads: temporal.api.common.v1.IPayloads | null | undefined): Promise<T | undefined> {
    if (!payloads?.payloads?.length) return undefined;
    return decodeFromPayloadsAtIndex<T>(this.converter, 0, payloads.payloads).catch(codecError);
  }
}

/** A payload this client cannot decode: most likely encrypted history without the key. */
export function codecError(err: unknown): never {
  throw new UserError(
    `The run's history could not be decoded (${err instanceof Error ? err.message : String(err)}). ` +
      'If the worker encrypts history, give this command the same keys (RUNBOOK_CODEC_KEYS or RUNBOOK_CODEC_KEYS_FILE).',
    { cause: err },
  );
}
