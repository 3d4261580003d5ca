// Pure (workflow-safe). Expressions `${{ ... }}` in runbooks, evaluated by CEL (Common Expression Language,
// @marcbachmann/cel-js): sandboxed, no eval, always terminates, deterministic. Values interpolated into shell
// commands are shell-quoted unless the expression is wrapped in raw(...).
//
// Limits. The runbook is trusted but the data is not (params, alert labels, step outputs from hosts), and CEL's
// comprehensions and concatenation make work and memory grow with it (`l.map(a, l.map(b, ...))`, strings doubled
// through `cel.bind`). So an expression's source is bounded when it is parsed (length, nesting), values fed in are
// bounded in depth, and each evaluation has a budget: every sub-expression evaluated costs 1, and every string or
// list an operator or function makes costs its length. Over budget, evaluation stops with an ExpressionError. The
// budget is counted, not timed, so a replayed workflow fails (or not) exactly as it did the first time.
import { failureClass, FAILURES } from '../common/failure-types';
import { Environment } from '@marcbachmann/cel-js';
import { quote } from 'shell-quote';

/**
 * Variables an expression may start from. `result` exists only in `until.condition`. `origin` is the run's target a
 * step is for: the same as `target`, except in a step with its own `targets`, where `target` is the host acted on.
 */
export const ROOT_VARIABLES = ['params', 'target', 'origin', 'steps', 'alert', 'run', 'secrets', 'result'] as const;

/** One piece of a template string: literal text or an expression. */
export type Segment = { kind: 'text'; text: string } | { kind: 'expr'; source: string; raw: boolean; offset: number };

/** Thrown for a template or expression that does not parse or fails; `offset` is within the template string. */
export class ExpressionError extends failureClass(FAILURES.expression) {
  constructor(
    message: string,
    readonly offset: number,
    readonly overLimit = false,
  ) {
    super(message);
  }
}

/** Characters of one expression's source, at most. */
export const MAX_EXPRESSION_LENGTH = 4096;
/** Nesting of an expression's syntax tree (operators, calls, members, literals inside each other), at most. */
export const MAX_EXPRESSION_DEPTH = 64;
/** Nesting of a value fed into an expression (a step's JSON output, a param), at most. */
export const MAX_VALUE_DEPTH = 100;
/**
 * One evaluation's budget: sub-expressions evaluated, plus the length of every string and list that operators and
 * functions make. Well under a second of work (a workflow task must finish within two seconds); a 1 MiB step
 * output can still be transformed a few times over.
 */
export const EVALUATION_BUDGET = 5_000_000;

const env = new Environment({
  unlistedVariablesAreDyn: true,
  limits: { maxDepth: MAX_EXPRESSION_DEPTH, maxAstNodes: 10_000 },
});

const OPEN = '${{';
const CLOSE = '}}';

/** Splits `text ${{ expr }} text` into segments; throws ExpressionError on an unterminated `${{`. */
export function parseTemplate(template: string): Segment[] {
  const segments: Segment[] = [];
  let pos = 0;
  for (;;) {
    const start = template.indexOf(OPEN, pos);
    if (start < 0) {
      if (pos < template.length) segments.push({ kind: 'text', text: template.slice(pos) });
      return segments;
    }
    if (start > pos) segments.push({ kind: 'text', text: template.slice(pos, start) });
    const end = template.indexOf(CLOSE, start + OPEN.length);
    if (end < 0) throw new ExpressionError('unterminated `${{`: expected `}}`', start);
    let source = template.slice(start + OPEN.length, end).trim();
    if (!source) throw new ExpressionError('empty expression `${{ }}`', start);
    const rawMatch = /^raw\(([\s\S]*)\)$/.exec(source);
    if (rawMatch?.[1] !== undefined) source = rawMatch[1].trim();
    segments.push({ kind: 'expr', source, raw: rawMatch !== null, offset: start });
    pos = end + CLOSE.length;
  }
}

/** True when the string contains an expression. */
export function isTemplate(value: string): boolean {
  return value.includes(OPEN);
}

type Compiled = ReturnType<Environment['parse']>;
const compiled = new Map<string, Compiled>();

/** The start of a long expression, for messages. */
function brief(source: string): string {
  return source.length > 60 ? `${source.slice(0, 57)}...` : source;
}

function compile(source: string): Compiled {
  let fn = compiled.get(source);
  if (!fn) {
    if (source.length > MAX_EXPRESSION_LENGTH) {
      throw new ExpressionError(
        `\`${brief(source)}\` is ${source.length} characters long; an expression may have at most ${MAX_EXPRESSION_LENGTH}`,
        0,
        true,
      );
    }
    try {
      fn = env.parse(source);
    } catch (err) {
      const limit = /Exceeded (max\w+)/.exec(firstLine(err))?.[1];
      if (limit === 'maxDepth') throw new ExpressionError(tooDeep(source), 0, true);
      if (limit)
        throw new ExpressionError(`\`${brief(source)}\` is too large (${firstLine(err)}); split it up`, 0, true);
      throw new ExpressionError(`cannot parse \`${source}\`: ${firstLine(err)}`, 0);
    }
    if (astDepth((fn as unknown as { ast: unknown }).ast) > MAX_EXPRESSION_DEPTH)
      throw new ExpressionError(tooDeep(source), 0, true);
    compiled.set(source, fn);
  }
  return fn;
}

function tooDeep(source: string): string {
  return `\`${brief(source)}\` nests more than ${MAX_EXPRESSION_DEPTH} levels deep; split it up`;
}

/** Depth of a parsed expression's tree, without recursion (long `a + b + c ...` chains nest too). */
function astDepth(root: unknown): number {
  let deepest = 0;
  const todo: [unknown, number][] = [[root, 0]];
  while (todo.length > 0) {
    const [node, depth] = todo.pop()!;
    if (!node || typeof node !== 'object') continue;
    if (Array.isArray(node)) {
      for (const n of node) todo.push([n, depth]);
      continue;
    }
    const op = (node as { op?: unknown }).op;
    if (typeof op !== 'string') continue;
    deepest = Math.max(deepest, depth + 1);
    if (deepest > MAX_EXPRESSION_DEPTH) return deepest;
    todo.push([(node as { args?: unknown }).args, depth + 1]);
  }
  return deepest;
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
}

interface AstNode {
  op: string;
  args: unknown;
}

/**
 * The variable paths an expression reads, e.g. [['params','service'], ['steps','check','outputs','lag']].
 * Comprehension variables (`hosts.map(h, ...)`) are not roots and are left out.
 */
export function references(source: string): string[][] {
  const ast = (compile(source) as unknown as { ast: AstNode }).ast;
  const found: string[][] = [];
  const chain = (node: AstNode): string[] | undefined => {
    if (node.op === 'id' && typeof node.args === 'string') return [node.args];
    if (node.op === '.' || node.op === '.?') {
      const [obj, field] = node.args as [AstNode, string];
      const base = chain(obj);
      return base ? [...base, field] : undefined;
    }
    if (node.op === '[]') {
      const [obj, key] = node.args as [AstNode, AstNode];
      const base = chain(obj);
      if (base && key.op === 'value' && typeof key.args === 'string') return [...base, key.args];
    }
    return undefined;
  };
  const walk = (node: unknown, bound: Set<string>): void => {
    if (!node || typeof node !== 'object') return;
    if (Array.isArray(node)) {
      node.forEach((n) => walk(n, bound));
      return;
    }
    const n = node as AstNode;
    if (typeof n.op !== 'string') return;
    const path = chain(n);
    if (path) {
      if (!bound.has(path[0]!)) found.push(path);
      return;
    }
    if (n.op === 'rcall' || n.op === 'call') {
      const args = n.args as unknown[];
      // Macros like list.map(x, expr) bind x inside expr.
      const macroArgs = (args[args.length - 1] ?? []) as AstNode[];
      const macro = typeof args[0] === 'string' && ['map', 'filter', 'all', 'exists', 'exists_one'].includes(args[0]);
      const inner = new Set(bound);
      if (macro && macroArgs[0]?.op === 'id') inner.add(String(macroArgs[0].args));
      args.forEach((a, i) => walk(a, macro && i === args.length - 1 ? inner : bound));
      return;
    }
    walk(n.args, bound);
  };
  walk(ast, new Set());
  return found;
}

/** Checks that an expression parses; throws ExpressionError with the parser's message. */
export function checkExpression(source: string): void {
  compile(source);
}

/** Thrown inside the evaluator when the budget runs out; one object, so a loop that catches it stays cheap. */
const OVER_BUDGET = new Error('evaluation budget exhausted');

/** The current evaluation's spending (evaluations are synchronous, so one meter serves them all). */
const meter = { spent: 0 };

function charge(cost: number): void {
  meter.spent += cost;
  if (meter.spent > EVALUATION_BUDGET) throw OVER_BUDGET;
}

/** Operators, functions and literals that make new strings and lists (member access only points at data). */
const MAKES_VALUES = new Set(['+', 'call', 'rcall', 'list']);

/**
 * What a made value costs: its length; for a list, also the length of the strings in it, since one `join` turns
 * a list of a thousand references to one large string into a string a thousand times as large.
 */
function sizeOf(value: unknown): number {
  if (typeof value === 'string' || value instanceof Uint8Array) return value.length;
  if (Array.isArray(value)) {
    let size = value.length;
    for (const v of value) if (typeof v === 'string') size += v.length;
    return size;
  }
  if (value instanceof Map || value instanceof Set) return value.size;
  return 0;
}

interface CelNode {
  op: string;
  evaluate(ev: unknown, node: CelNode, ctx: unknown): unknown;
}
interface CelEvaluator {
  run(node: CelNode, ctx: unknown): unknown;
}

/**
 * Meters the library's evaluator. Every sub-expression is evaluated through its `run(node, ctx)` (the root is
 * called directly), so wrapping that one method sees all the work. The evaluator is private to the environment:
 * it is caught on its way into one evaluation of a probe expression.
 */
function meterEvaluator(): void {
  const probe = env.parse('true');
  const root = (probe as unknown as { ast: CelNode }).ast;
  const evaluateRoot = root.evaluate;
  let evaluator: CelEvaluator | undefined;
  root.evaluate = function (this: CelNode, ev, node, ctx) {
    evaluator = ev as CelEvaluator;
    return evaluateRoot.call(this, ev, node, ctx);
  };
  probe({});
  if (!evaluator || typeof evaluator.run !== 'function') {
    throw new Error(
      '@marcbachmann/cel-js changed: its evaluator can no longer be metered (dsl/expr.ts meterEvaluator)',
    );
  }
  const run = evaluator.run;
  evaluator.run = function (this: CelEvaluator, node, ctx) {
    charge(1);
    const value = run.call(this, node, ctx);
    if (MAKES_VALUES.has(node.op)) charge(sizeOf(value));
    return value;
  };
}
meterEvaluator();

/** CEL works on BigInt integers; runbook data uses JS numbers. These convert at the boundary. */
function toCel(value: unknown, depth = 0): unknown {
  if (typeof value === 'number' && Number.isInteger(value)) return BigInt(value);
  if (value && typeof value === 'object') {
    if (depth >= MAX_VALUE_DEPTH)
      throw new ExpressionError(`a value in the context is nested deeper than ${MAX_VALUE_DEPTH} levels`, 0, true);
    if (Array.isArray(value)) return value.map((v) => toCel(v, depth + 1));
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toCel(v, depth + 1)]));
  }
  return value;
}

function fromCel(value: unknown): unknown {
  if (typeof value === 'bigint') return Number(value);
  if (Array.isArray(value)) return value.map(fromCel);
  if (value instanceof Map) return Object.fromEntries([...value.entries()].map(([k, v]) => [String(k), fromCel(v)]));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fromCel(v)]));
  }
  return value;
}

/**
 * A secret in an expression context (`secrets.NAME`) is never its value but this token, which the executing
 * activity replaces at the last moment (shell-quoted in commands) and `plan` shows masked. The NUL bytes make
 * it unforgeable: inputs containing NUL are refused.
 */
export function secretToken(name: string): string {
  return `\u0000secret:${name}\u0000`;
}

// eslint-disable-next-line no-control-regex -- NUL delimits secret tokens on purpose
const SECRET_TOKEN = /\u0000secret:([a-z][a-z0-9_]*)\u0000/g;
// eslint-disable-next-line no-control-regex -- as above
const WHOLE_SECRET_TOKEN = /^\u0000secret:[a-z][a-z0-9_]*\u0000$/;

/**
 * Rewrites a text that may carry secret tokens: each token through `onSecret(name)`, the non-empty text between
 * them through `onText`. The one place that knows the token format, for display, shell and HTTP alike.
 */
export function mapSecretTokens(
  text: string,
  onSecret: (name: string) => string,
  onText: (t: string) => string = (t) => t,
): string {
  let out = '';
  let last = 0;
  for (const m of text.matchAll(SECRET_TOKEN)) {
    if (m.index! > last) out += onText(text.slice(last, m.index));
    out += onSecret(m[1]!);
    last = m.index! + m[0].length;
  }
  return last < text.length ? out + onText(text.slice(last)) : out;
}

/** Replaces secret tokens with `<secret:NAME>` for display. */
export function maskSecrets(text: string): string {
  return mapSecretTokens(text, (name) => `<secret:${name}>`);
}

/** Names of the secrets a rendered string carries. */
export function secretsIn(text: string): string[] {
  return [...text.matchAll(SECRET_TOKEN)].map((m) => m[1]!);
}

export type ExprContext = Record<string, unknown>;

/** Evaluates one expression. Throws ExpressionError naming the expression on failure. */
export function evaluate(source: string, ctx: ExprContext): unknown {
  const fn = compile(source);
  const input = toCel(ctx) as Record<string, unknown>;
  meter.spent = 0;
  let value: unknown;
  try {
    value = fn(input);
  } catch (err) {
    if (err !== OVER_BUDGET && meter.spent <= EVALUATION_BUDGET)
      throw new ExpressionError(`\`${source}\`: ${firstLine(err)}`, 0);
  }
  // Over budget even when the library caught the signal on the way (`||`, `exists` absorb errors).
  if (meter.spent > EVALUATION_BUDGET) {
    throw new ExpressionError(
      `\`${brief(source)}\`: stopped after ${EVALUATION_BUDGET} units of work (values it makes count by their length); ` +
        'the data it ran over is too large for it',
      0,
      true,
    );
  }
  return fromCel(value);
}

/** Evaluates a `when`/`condition` expression to a boolean; anything but a boolean is an error. */
export function evaluateCondition(source: string, ctx: ExprContext): boolean {
  const value = evaluate(source, ctx);
  if (typeof value !== 'boolean')
    throw new ExpressionError(`\`${source}\` must be true or false, got ${JSON.stringify(value)}`, 0);
  return value;
}

/** How an interpolated value is written into its context. */
export type RenderMode = 'shell' | 'text';

function stringify(value: unknown, mode: RenderMode, raw: boolean): string {
  if (typeof value === 'string' && value.includes('\u0000')) {
    if (WHOLE_SECRET_TOKEN.test(value)) return value;
    throw new ExpressionError('a secret can only be interpolated whole, as `${{ secrets.NAME }}`', 0);
  }
  if (mode === 'shell' && !raw) {
    if (Array.isArray(value)) return value.map((v) => stringify(v, mode, raw)).join(' ');
    return quote([stringify(value, 'text', true)]);
  }
  if (value === null || value === undefined) return '';
  if (Array.isArray(value)) return value.map((v) => stringify(v, 'text', true)).join(',');
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/**
 * Renders a template. In 'shell' mode every interpolated value is shell-quoted (lists become several quoted
 * words); `${{ raw(expr) }}` inserts the value as is, which `runbook lint` flags.
 */
export function render(template: string, ctx: ExprContext, mode: RenderMode): string {
  return parseTemplate(template)
    .map((seg) => (seg.kind === 'text' ? seg.text : stringify(evaluate(seg.source, ctx), mode, seg.raw)))
    .join('');
}

/** Renders a template that is exactly one expression to its value (keeps lists and numbers), else a string. */
export function renderValue(template: string, ctx: ExprContext): unknown {
  const segs = parseTemplate(template);
  const only = segs[0];
  if (segs.length === 1 && only?.kind === 'expr') return evaluate(only.source, ctx);
  return render(template, ctx, 'text');
}
