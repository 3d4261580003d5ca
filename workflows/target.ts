// Workflow side (deterministic). One target of a run from start to end: take the host's lock, run the steps
// (consecutive plain SSH steps as step groups), and after a failure or a cancel run the target's rollback
// newest-first to completion; release the lock last.
import { CancellationScope, isCancellation, patched, workflowInfo } from '@temporalio/workflow';
import type { TargetHost } from '../dsl/selector';
import { acquireHostLock, releaseHostLock } from './host-lock';
import { errorText, groupLength, rollbackRun, runStep, runStepGroup, type TargetRun } from './steps';
import type { HostState } from './messages';
import { observeLockWait } from './metrics';

export interface HostResult {
  state: HostState;
  error?: string;
  steps: Record<string, string>;
  rollbackErrors: string[];
}

export interface TargetOptions {
  /** Cancelling the run abandons the lock child instead of cancelling it (see acquireHostLock). */
  abandonOnCancel: boolean;
  /** Told at once when the target fails or is cancelled, before its rollback (the rollout stops starting targets). */
  onFailure(cancelled: boolean): void;
}

/** Runs the target `t` to its end, recording it in `result` and the run's live state. Throws nothing. */
export async function runTarget(t: TargetRun, result: HostResult, opts: TargetOptions): Promise<void> {
  const { env, host } = t;
  const name = host?.name ?? '(run)';
  const rb = env.prepared.runbook;
  let lock: Awaited<ReturnType<typeof acquireHostLock>> | undefined;
  let acquired = !host;
  try {
    // Runs recorded before host locks existed replay without them (see test/integration/replay.test.ts).
    if (host && patched('host-locks') && !env.heldHosts.includes(host.name)) {
      const askedAt = Date.now();
      lock = await acquireHostLock(
        host.name,
        workflowInfo().workflowId,
        rb.locks?.hosts ?? 'wait',
        () => {
          env.state.hosts[name] = { state: 'waiting-lock' };
        },
        opts.abandonOnCancel,
      );
      observeLockWait(rb.metadata.name, askedAt);
      acquired = true;
    }
    env.state.hosts[name] = { state: 'running' };
    // Runs recorded before step groups existed replay one step at a time.
    const grouping = host !== undefined && patched('step-groups');
    for (let i = 0; i < rb.steps.length; i++) {
      const step = rb.steps[i]!;
      const n = grouping ? groupLength(rb.steps, i) : 0;
      if (n >= 2) {
        const group = rb.steps.slice(i, i + n);
        let done = n;
        try {
          done = await runStepGroup(
            t as TargetRun & { host: TargetHost },
            group.map((s, k) => ({ step: s, path: `steps[${i + k}]` })),
          );
        } finally {
          for (const s of group) if (t.steps[s.id]) result.steps[s.id] = t.steps[s.id]!.status;
        }
        i += Math.max(1, done) - 1;
        continue;
      }
      try {
        await runStep(t, step, `steps[${i}]`);
        result.steps[step.id] = t.steps[step.id]?.status ?? 'succeeded';
      } catch (err) {
        if (isCancellation(err) || !step.continueOnError) throw err;
        result.steps[step.id] = `failed (continued): ${errorText(err)}`;
      }
    }
    env.state.hosts[name] = { state: 'succeeded' };
    result.state = 'succeeded';
  } catch (err) {
    opts.onFailure(isCancellation(err));
    result.error = isCancellation(err) ? 'cancelled' : errorText(err);
    env.state.hosts[name] = { state: 'failed', error: result.error };
    // Rollback runs to completion even when the run is being cancelled; its own failures are recorded. A target
    // whose lock was never acquired did nothing, so it has nothing to roll back. (Inline, with no extra await
    // layer, like the steps above: see Rollout.target in runbook.ts for why the await structure is kept.)
    await CancellationScope.nonCancellable(async () => {
      for (const c of acquired ? [...t.comp].reverse() : []) {
        try {
          await runStep(rollbackRun(t.env, c), c.step, c.path);
        } catch (rbErr) {
          result.rollbackErrors.push(`${c.step.id}: ${errorText(rbErr)}`);
        }
      }
    });
    result.state = acquired && t.comp.length ? 'rolled-back' : 'failed';
    env.state.hosts[name] = { state: result.state, error: result.error };
  } finally {
    if (lock) await CancellationScope.nonCancellable(() => releaseHostLock(lock!));
  }
}
