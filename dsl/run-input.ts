// Pure (workflow-safe). The schemas of workflow inputs. Whatever starts a workflow (the UI's Start Workflow form,
// `temporal workflow start`, the CLI, an alert, a schedule) is untrusted: its JSON is checked against these before
// anything else happens, unknown fields are refused, and the fields only *name* things the worker's own
// configuration defines (a runbook in its directory, an inventory on its allow-list, a host in that inventory).
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { NAME_PATTERN } from './schema';

/** No control characters (they would forge lines in logs and audit tables). */
const PRINTABLE = '^[^\\u0000-\\u001f\\u007f]*$';
/** The same, new lines allowed. */
const PRINTABLE_LINES = '^[^\\u0000-\\u0009\\u000b-\\u001f\\u007f]*$';
const PRINTABLE_RE = new RegExp(PRINTABLE);
/** Whether a value is a non-empty string of at most `max` printable characters (the rule of the input's texts). */
export function isPrintableText(value: unknown, max: number): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= max && PRINTABLE_RE.test(value);
}
const Text = (max: number, description: string) =>
  Type.String({ minLength: 1, maxLength: max, pattern: PRINTABLE, description });

/**
 * The longest runbook a run may carry (characters): far above any real runbook, and well under the server's limit
 * for one payload (2 MB on a default Temporal server), which the workflow input and the prepare step's input are.
 */
export const RUNBOOK_SOURCE_MAX_CHARS = 256 * 1024;

/** How a run was started; `sub-runbook` is set by a parent run only. */
export const TRIGGERS = ['manual', 'alert', 'schedule', 'sub-runbook'] as const;

/** An operator's override of a closed change window: who, and why (both recorded). */
export const OverrideSchema = Type.Object(
  {
    by: Text(100, "Who overrides (a user of the closed calendars' `override` list)."),
    groups: Type.Optional(Type.Array(Text(100, 'group'), { maxItems: 20, description: 'Groups of the overrider.' })),
    reason: Type.String({
      minLength: 3,
      maxLength: 1000,
      pattern: PRINTABLE_LINES,
      description: 'Why the change cannot wait for the window (recorded).',
    }),
  },
  { additionalProperties: false, description: 'Run even though a change calendar is closed.' },
);

export type WindowOverride = Static<typeof OverrideSchema>;

export const RunbookInputSchema = Type.Object(
  {
    runbook: Type.String({
      pattern: NAME_PATTERN,
      maxLength: 128,
      description: "Runbook name: NAME.yaml in the worker's runbook directory.",
    }),
    source: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: RUNBOOK_SOURCE_MAX_CHARS,
        description:
          'The runbook YAML itself (`runbook run FILE.yaml`), named `runbook`; only workers started with RUNBOOK_ALLOW_RUNBOOK_FILES=on (the default of `runbook dev`) accept it.',
      }),
    ),
    params: Type.Optional(
      Type.Record(Type.String({ maxLength: 128 }), Type.Unknown(), {
        maxProperties: 200,
        description: 'Param values by name.',
      }),
    ),
    inventory: Type.Optional(
      Text(
        1024,
        "An inventory on the worker's allow-list (RUNBOOK_INVENTORY, RUNBOOK_INVENTORIES); default RUNBOOK_INVENTORY.",
      ),
    ),
    initiator: Type.Optional(Text(256, 'Who started it: an operator, an alert fingerprint, a schedule id.')),
    trigger: Type.Optional(
      Type.Union(
        TRIGGERS.map((t) => Type.Literal(t)),
        { description: 'manual | alert | schedule (sub-runbook: parent runs only).' },
      ),
    ),
    alert: Type.Optional(
      Type.Record(Type.String({ maxLength: 128 }), Type.Unknown(), {
        maxProperties: 64,
        description: 'The alert that started the run.',
      }),
    ),
    windowOverride: Type.Optional(OverrideSchema),
    heldHosts: Type.Optional(
      Type.Array(Text(253, 'host'), { maxItems: 10_000, description: 'Internal: host locks the parent run holds.' }),
    ),
  },
  { additionalProperties: false },
);

export type RunbookInput = Static<typeof RunbookInputSchema>;

export const RunCommandInputSchema = Type.Object(
  {
    host: Text(253, 'Inventory host name.'),
    inventory: Type.Optional(Text(1024, "An inventory on the worker's allow-list; default RUNBOOK_INVENTORY.")),
    command: Type.String({
      minLength: 1,
      maxLength: 64 * 1024,
      description: "The command, run by the login user's shell.",
    }),
    timeoutMs: Type.Optional(
      Type.Integer({
        minimum: 1000,
        maximum: 7 * 24 * 3600_000,
        description: 'Kill the command after this long. @default 600000',
      }),
    ),
    initiator: Type.Optional(Text(256, 'Who started it.')),
  },
  { additionalProperties: false },
);

export type RunCommandInput = Static<typeof RunCommandInputSchema>;

/** At most this many problems are reported (a hostile input can have thousands). */
const MAX_REPORTED = 10;

function fieldName(path: string): string {
  return path === ''
    ? 'input'
    : `input${path
        .split('/')
        .slice(1)
        .map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p.replace(/[^\w-]/g, '?').slice(0, 64)}`))
        .join('')}`;
}

/** Nesting allowed in an input value: enough for any real param or alert, and far from any stack limit. */
export const MAX_INPUT_DEPTH = 32;

/** The path of the first value nested deeper than `limit` (walked without recursion), or undefined. */
export function tooDeep(value: unknown, limit = MAX_INPUT_DEPTH): string | undefined {
  const stack: [unknown, number, string][] = [[value, 0, '']];
  while (stack.length) {
    const [v, depth, at] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth >= limit) return at;
    for (const [k, child] of Object.entries(v as object)) stack.push([child, depth + 1, `${at}/${k}`]);
  }
  return undefined;
}

/** What holds the field at `path`, for messages: `the input`, or the parent field (`input.windowOverride`). */
function holder(path: string): string {
  const parent = path.split('/').slice(0, -1).join('/');
  return parent === '' ? 'the input' : fieldName(parent);
}

/** The fields the object holding `path`'s last segment accepts (the schema walked along the path). */
function fieldsAt(schema: TSchema, path: string): string[] {
  let at: TSchema | undefined = schema;
  for (const seg of path.split('/').slice(1, -1)) {
    const props = at?.properties as Record<string, TSchema> | undefined;
    at = props?.[seg];
  }
  return at?.type === 'object' && at.properties ? Object.keys(at.properties as object) : [];
}

/**
 * What is wrong with a workflow input, one line per problem naming the field; empty when it is valid. Values
 * are never quoted back (they may be huge or hostile), and a value nested too deep is refused before anything
 * walks it recursively (serialising it again would overflow the stack and wedge the run).
 */
export function inputProblems(schema: TSchema, value: unknown): string[] {
  const deep = tooDeep(value);
  if (deep !== undefined)
    return [`${fieldName(deep.split('/').slice(0, 4).join('/'))}: nested deeper than ${MAX_INPUT_DEPTH} levels`];
  if (Value.Check(schema, value)) return [];
  const out: string[] = [];
  for (const e of Value.Errors(schema, value)) {
    const message =
      e.message === 'Unexpected property'
        ? `unknown field; ${holder(e.path)} accepts only ${fieldsAt(schema, e.path).join(', ')}`
        : e.message;
    const line = `${fieldName(e.path)}: ${message}`;
    if (!out.includes(line)) out.push(line);
    if (out.length >= MAX_REPORTED) break;
  }
  return out;
}

/** An operator's approve/reject (the `decide` signal's payload; untrusted like any input). */
export const DecisionSchema = Type.Object(
  {
    id: Type.String({
      maxLength: 300,
      pattern: '^(gate|(steps|rollback)\\[[0-9]+\\][^\\u0000-\\u001f\\u007f]*)$',
      description: 'The approval: `gate`, a step path (every host waiting there), or PATH@HOST (one host).',
    }),
    approve: Type.Boolean(),
    by: Text(100, 'Who decides.'),
    groups: Type.Optional(Type.Array(Text(100, 'group'), { maxItems: 20 })),
    comment: Type.Optional(Type.String({ maxLength: 1000, pattern: PRINTABLE_LINES })),
  },
  { additionalProperties: false },
);
