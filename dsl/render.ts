// Pure (workflow-safe). Turns a step and an expression context into the exact action to perform: the shell
// command (values quoted), the HTTP request, the message. Used by `plan` now and by the interpreter at run time.
import { evaluateCondition, render, renderValue, secretToken, type ExprContext } from './expr';
import type { ParamValue } from './params';
import type { RunbookDoc, StepDoc } from './schema';
import type { TargetHost } from './selector';

export type RenderedAction =
  | {
      kind: 'ssh';
      command?: string;
      script?: string;
      upload?: { src: string; dest: string; mode: string };
      sudo: boolean;
      user?: string;
      env: Record<string, string>;
      cwd?: string;
      expectExit: number[];
      /** Log in as this account with this password secret (its name) instead of the inventory's login. */
      login?: { user: string; password: string };
    }
  | {
      kind: 'http';
      method: string;
      url: string;
      headers: Record<string, string>;
      json?: unknown;
      body?: string;
      auth?: { bearer?: string; basic?: { user: string; password: string } };
      expectStatus: number[];
      tlsVerify: boolean;
    }
  | { kind: 'sleep'; duration: string }
  | {
      kind: 'approval';
      message: string;
      users: string[];
      groups: string[];
      quorum: number;
      timeout: string;
      onTimeout: 'reject' | 'escalate';
    }
  | { kind: 'notify'; channel: string; message: string }
  | { kind: 'runbook'; name: string; params: Record<string, unknown> }
  | { kind: 'parallel'; limit?: number };

export interface RunInfo {
  id: string;
  initiator: string;
  trigger: string;
}

/** What `target` is in expressions. */
export function targetView(t: TargetHost): Record<string, unknown> {
  return {
    name: t.name,
    address: t.address,
    port: t.port,
    user: t.user ?? '',
    zone: t.zone ?? '',
    labels: t.labels,
    vars: t.vars,
  };
}

/** The expression context for one target. Step outputs are filled in as steps complete. */
export function buildContext(
  params: Record<string, ParamValue>,
  target: TargetHost | undefined,
  rb: RunbookDoc,
  run: RunInfo,
  alert: Record<string, unknown> = { labels: {}, annotations: {} },
  steps: Record<string, { outputs: Record<string, unknown>; status?: string }> = {},
): ExprContext {
  const secrets = Object.fromEntries(Object.keys(rb.secrets ?? {}).map((name) => [name, secretToken(name)]));
  // A secret-typed param holds a reference (secret:NAME); in expressions it stands for that secret.
  const paramValues = Object.fromEntries(
    Object.entries(params).map(([k, v]) => {
      const spec = rb.params?.[k];
      return [k, spec?.type === 'secret' && typeof v === 'string' ? secretToken(v.slice('secret:'.length)) : v];
    }),
  );
  const view = target ? targetView(target) : {};
  return {
    params: paramValues,
    target: view,
    origin: view,
    steps,
    alert,
    run,
    secrets,
  };
}

function renderDeep(value: unknown, ctx: ExprContext): unknown {
  if (typeof value === 'string') return renderValue(value, ctx);
  if (Array.isArray(value)) return value.map((v) => renderDeep(v, ctx));
  if (value && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, renderDeep(v, ctx)]));
  return value;
}

const text = (s: string, ctx: ExprContext) => render(s, ctx, 'text');
const mapValues = (o: Record<string, string> | undefined, ctx: ExprContext) =>
  Object.fromEntries(Object.entries(o ?? {}).map(([k, v]) => [k, text(v, ctx)]));

/** The action a step performs for this context. Throws ExpressionError when an expression fails. */
export function renderStep(step: StepDoc, ctx: ExprContext): RenderedAction {
  if (step.ssh) {
    const s = step.ssh;
    return {
      kind: 'ssh',
      command: s.run !== undefined ? render(s.run, ctx, 'shell') : undefined,
      script: s.script !== undefined ? render(s.script, ctx, 'shell') : undefined,
      upload: s.upload
        ? { src: s.upload.src, dest: text(s.upload.dest, ctx), mode: s.upload.mode ?? '0644' }
        : undefined,
      sudo: s.sudo ?? false,
      user: s.user,
      env: mapValues(s.env, ctx),
      cwd: s.cwd !== undefined ? text(s.cwd, ctx) : undefined,
      expectExit: s.expectExit ?? [0],
      ...(s.login
        ? { login: { user: text(s.login.user, ctx), password: s.login.password.slice('secret:'.length) } }
        : {}),
    };
  }
  if (step.http) {
    const h = step.http;
    const auth = h.auth
      ? {
          bearer: h.auth.bearer ? secretToken(h.auth.bearer.slice('secret:'.length)) : undefined,
          basic: h.auth.basic
            ? {
                user: text(h.auth.basic.user, ctx),
                password: secretToken(h.auth.basic.password.slice('secret:'.length)),
              }
            : undefined,
        }
      : undefined;
    return {
      kind: 'http',
      method: h.method ?? 'GET',
      url: text(h.url, ctx),
      headers: mapValues(h.headers, ctx),
      json: h.json !== undefined ? renderDeep(h.json, ctx) : undefined,
      body: h.body !== undefined ? text(h.body, ctx) : undefined,
      auth,
      expectStatus: h.expect?.status ?? [200],
      tlsVerify: h.tlsVerify ?? true,
    };
  }
  if (step.sleep !== undefined) return { kind: 'sleep', duration: step.sleep };
  if (step.approval) {
    const a = step.approval;
    return {
      kind: 'approval',
      message: text(a.message ?? `Approve step ${step.id}?`, ctx),
      users: a.approvers.users ?? [],
      groups: a.approvers.groups ?? [],
      quorum: a.quorum ?? 1,
      timeout: a.timeout ?? '1h',
      onTimeout: a.onTimeout ?? 'reject',
    };
  }
  if (step.notify) return { kind: 'notify', channel: step.notify.channel, message: text(step.notify.message, ctx) };
  if (step.runbook)
    return {
      kind: 'runbook',
      name: step.runbook.name,
      params: renderDeep(step.runbook.params ?? {}, ctx) as Record<string, unknown>,
    };
  if (step.parallel) return { kind: 'parallel', limit: step.parallel.limit };
  throw new Error(`step ${step.id} has no kind`); // unreachable for a validated runbook
}

/** Whether a step's `when` holds; true without one. */
export function shouldRun(step: StepDoc, ctx: ExprContext): boolean {
  return step.when === undefined || evaluateCondition(step.when, ctx);
}
