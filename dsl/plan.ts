// Pure (workflow-safe). Fleet strategy arithmetic (batches, failure threshold) and the dry-run plan: per target
// and in order, the exact commands and requests a run would perform, executing nothing.
import { references, renderValue } from './expr';
import type { ParamValue } from './params';
import { buildContext, renderStep, targetView, type RenderedAction, type RunInfo } from './render';
import type { RunbookDoc, StepDoc, StrategyDoc } from './schema';
import { resolveTargets, type InventoryData, type SelectorError, type TargetHost } from './selector';

function sizeOf(spec: number | string, total: number): number {
  if (typeof spec === 'number') return spec;
  return Math.max(1, Math.ceil((total * Number(spec.slice(0, -1))) / 100));
}

/**
 * Splits `total` targets into batch sizes. rolling: `batch` is a count, a percentage (rounded up, at least 1),
 * or a ramp such as [1, 5, "25%"] whose last entry repeats. parallel: one batch of everything.
 */
export function batchSizes(total: number, strategy: StrategyDoc | undefined): number[] {
  if (total === 0) return [];
  if (strategy?.type === 'parallel') return [total];
  const spec = strategy?.batch ?? 1;
  const ramp = Array.isArray(spec) ? spec : [spec];
  const sizes: number[] = [];
  let left = total;
  for (let i = 0; left > 0; i++) {
    const size = Math.min(left, sizeOf(ramp[Math.min(i, ramp.length - 1)]!, total));
    sizes.push(size);
    left -= size;
  }
  return sizes;
}

/**
 * How many failed targets the run tolerates: a count, or a percentage of the targets rounded down. The run
 * stops starting new targets once failures exceed it ("at least": targets already in flight still finish, so
 * the final count can be higher). Default 0: the first failure stops the rollout.
 */
export function failureThreshold(total: number, strategy: StrategyDoc | undefined): number {
  const spec = strategy?.maxFailures ?? 0;
  return typeof spec === 'number' ? spec : Math.floor((total * Number(spec.slice(0, -1))) / 100);
}

export interface PlannedStep {
  id: string;
  path: string;
  kind: RenderedAction['kind'];
  /** undefined: no condition; true/false: decided now; 'runtime': depends on earlier outputs. */
  when?: boolean | 'runtime';
  action?: RenderedAction;
  /** Set when the action cannot be rendered before the run (it reads earlier steps' outputs). */
  dependsOnOutputs?: boolean;
  timeout?: string;
  retry?: number;
  until?: { every: string; timeout: string; condition?: string };
  continueOnError?: boolean;
  /** For a step with its own `targets`: the action per host it runs on (then `action` is unset). */
  on?: { target: string; action: RenderedAction }[];
  children?: PlannedStep[];
  rollback?: PlannedStep[];
}

export interface Plan {
  runbook: string;
  contentHash: string;
  risk: string;
  params: Record<string, ParamValue>;
  selector?: string;
  targets: string[];
  strategy: { type: 'rolling' | 'parallel'; batches: string[][]; limit?: number; maxFailures: number };
  approval?: RenderedAction;
  hostLocks: 'wait' | 'fail';
  perTarget: { target: string | null; steps: PlannedStep[] }[];
  rollback: { target: string | null; steps: PlannedStep[] }[];
}

function readsOutputs(value: unknown): boolean {
  const texts: string[] = [];
  const collect = (v: unknown) => {
    if (typeof v === 'string') texts.push(v);
    else if (Array.isArray(v)) v.forEach(collect);
    else if (v && typeof v === 'object')
      Object.entries(v).forEach(([k, x]) => {
        if (!['parallel', 'rollback'].includes(k)) collect(x);
      });
  };
  collect(value);
  return texts.some((t) => /\bsteps\s*\./.test(t) || /\bsteps\s*\[/.test(t));
}

type Resolve = (selector: string) => TargetHost[];

/** Plans one step for one context; outputs of earlier steps are shown as placeholders. */
function planStep(step: StepDoc, ctx: Record<string, unknown>, path: string, resolve: Resolve): PlannedStep {
  const base: PlannedStep = {
    id: step.id,
    path,
    kind: (['ssh', 'http', 'sleep', 'approval', 'notify', 'runbook', 'parallel'] as const).find(
      (k) => step[k] !== undefined,
    )!,
    timeout: step.timeout,
    retry: step.retry?.attempts,
    continueOnError: step.continueOnError,
    until: step.until
      ? { every: step.until.every, timeout: step.until.timeout, condition: step.until.condition }
      : undefined,
  };
  if (step.when !== undefined) {
    base.when = references(step.when).some((r) => r[0] === 'steps')
      ? 'runtime'
      : Boolean(renderValue(`\${{ ${step.when} }}`, ctx));
  }
  if (base.when === false) {
    // Skipped: what it would do may not even render (a `when: has(target.vars.lb)` guarding `target.vars.lb`).
  } else if (step.targets !== undefined) {
    const selector = renderValue(step.targets, ctx);
    base.on = resolve(Array.isArray(selector) ? selector.join(',') : String(selector)).map((host) => ({
      target: host.name,
      action: renderStep(step, { ...ctx, target: targetView(host) }),
    }));
  } else {
    base.action = renderStep(step, ctx);
  }
  base.dependsOnOutputs = readsOutputs(step) || undefined;
  if (step.parallel)
    base.children = step.parallel.steps.map((s, i) => planStep(s, ctx, `${path}.parallel.steps[${i}]`, resolve));
  if (step.rollback) base.rollback = step.rollback.map((s, i) => planStep(s, ctx, `${path}.rollback[${i}]`, resolve));
  return base;
}

/** Placeholder outputs, so templates that read earlier steps render as `<steps.ID.outputs.NAME>`. */
function placeholderSteps(rb: RunbookDoc): Record<string, { outputs: Record<string, string>; status: string }> {
  const out: Record<string, { outputs: Record<string, string>; status: string }> = {};
  const visit = (steps: StepDoc[] | undefined) =>
    (steps ?? []).forEach((s) => {
      out[s.id] = {
        outputs: Object.fromEntries(Object.keys(s.outputs ?? {}).map((o) => [o, `<steps.${s.id}.outputs.${o}>`])),
        status: `<steps.${s.id}.status>`,
      };
      visit(s.parallel?.steps);
      visit(s.rollback);
    });
  visit(rb.steps);
  return out;
}

export interface PlanInput {
  runbook: RunbookDoc;
  contentHash: string;
  params: Record<string, ParamValue>;
  inventory?: InventoryData;
  run: RunInfo;
  alert?: Record<string, unknown>;
}

export type PlanResult = { ok: true; plan: Plan } | { ok: false; errors: SelectorError[] };

/** Resolves the runbook's targets: its `targets` selector (rendered from params) against the inventory. */
export function planTargets(input: PlanInput): { selector?: string; hosts: TargetHost[]; errors: SelectorError[] } {
  const rb = input.runbook;
  if (rb.targets === undefined) return { hosts: [], errors: [] };
  const ctx = buildContext(input.params, undefined, rb, input.run, input.alert);
  const value = renderValue(rb.targets, ctx);
  const selector = Array.isArray(value) ? value.join(',') : String(value);
  if (!input.inventory)
    return {
      selector,
      hosts: [],
      errors: [{ message: `this runbook acts on targets (${selector}): give an inventory`, code: 'RB1403' }],
    };
  const { hosts, errors } = resolveTargets(input.inventory, selector);
  return { selector, hosts, errors };
}

export function planRun(input: PlanInput): PlanResult {
  const rb = input.runbook;
  const { selector, hosts, errors } = planTargets(input);
  if (errors.length > 0) return { ok: false, errors };
  const sizes = batchSizes(hosts.length, rb.strategy);
  const batches: string[][] = [];
  let i = 0;
  for (const size of sizes) {
    batches.push(hosts.slice(i, i + size).map((h) => h.name));
    i += size;
  }
  const steps = placeholderSteps(rb);
  const stepErrors: SelectorError[] = [];
  const resolve: Resolve = (selector) => {
    if (!input.inventory) {
      stepErrors.push({ message: `a step acts on targets (${selector}): give an inventory`, code: 'RB1403' });
      return [];
    }
    const r = resolveTargets(input.inventory, selector);
    stepErrors.push(...r.errors);
    return r.hosts;
  };
  const contexts = (rb.targets === undefined ? [undefined] : hosts).map((h) => ({
    target: h,
    ctx: buildContext(input.params, h, rb, input.run, input.alert, steps),
  }));
  const plan: Plan = {
    runbook: rb.metadata.name,
    contentHash: input.contentHash,
    risk: rb.metadata.risk ?? 'medium',
    params: input.params,
    selector,
    targets: hosts.map((h) => h.name),
    strategy: {
      type: rb.strategy?.type ?? 'rolling',
      batches,
      limit: rb.strategy?.limit,
      maxFailures: failureThreshold(hosts.length, rb.strategy),
    },
    approval: rb.approval ? renderStep({ id: 'approval', approval: rb.approval }, contexts[0]?.ctx ?? {}) : undefined,
    hostLocks: rb.locks?.hosts ?? 'wait',
    perTarget: contexts.map(({ target, ctx }) => ({
      target: target?.name ?? null,
      steps: rb.steps.map((s, n) => planStep(s, ctx, `steps[${n}]`, resolve)),
    })),
    rollback: contexts.map(({ target, ctx }) => ({
      target: target?.name ?? null,
      steps: [...(rb.rollback ?? [])].map((s, n) => planStep(s, ctx, `rollback[${n}]`, resolve)).reverse(),
    })),
  };
  if (stepErrors.length > 0) return { ok: false, errors: stepErrors };
  return { ok: true, plan };
}
