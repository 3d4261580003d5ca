// Pure (workflow-safe). The runbook language, defined once: the JSON Schema (runbooks/runbook.schema.json is
// generated from it), the TypeScript types (derived with Static), and the validator (ajv) all come from here.
import { Type, type Static, type TSchema } from '@sinclair/typebox';

/** Durations in Temporal's `ms` format: `500ms`, `30s`, `5m`, `2h`, `1d`. */
export const DURATION_PATTERN = '^[0-9]+(\\.[0-9]+)?(ms|s|m|h|d)$';
/** A percentage of the targets: `25%`. */
export const PERCENT_PATTERN = '^[0-9]{1,3}%$';
/** Step, param, output and secret names. */
export const ID_PATTERN = '^[a-z][a-z0-9_]*$';
/** Runbook names (file stem). */
export const NAME_PATTERN = '^[a-z][a-z0-9-]*$';

const Duration = (description: string, extra: object = {}) =>
  Type.String({ pattern: DURATION_PATTERN, description, ...extra });
const Expr = (description: string) => Type.String({ minLength: 1, description });
const Count = (description: string) =>
  Type.Union([Type.Integer({ minimum: 0 }), Type.String({ pattern: PERCENT_PATTERN })], { description });
const Id = (description: string) => Type.String({ pattern: ID_PATTERN, description });
const strict = { additionalProperties: false } as const;
/** A mapping whose keys must match a pattern; anything else is an error (TypeBox leaves other keys open). */
const NamedRecord = <V extends TSchema>(keyPattern: string, value: V, opts: { description?: string } = {}) =>
  Type.Record(Type.String({ pattern: keyPattern }), value, { ...opts, additionalProperties: false });

export const ParamTypes = ['string', 'integer', 'boolean', 'enum', 'list', 'duration', 'secret', 'targets'] as const;

export const Param = Type.Object(
  {
    type: Type.Union(
      ParamTypes.map((t) => Type.Literal(t)),
      { description: 'Value type; inputs are coerced to it and checked before any step runs.' },
    ),
    description: Type.Optional(
      Type.String({ description: 'Shown in `runbook docs`, `--help` of the run form and the UI.' }),
    ),
    required: Type.Optional(Type.Boolean({ description: 'Must be given. Defaults to true when there is no default.' })),
    default: Type.Optional(Type.Unknown({ description: 'Value used when none is given; checked like an input.' })),
    pattern: Type.Optional(
      Type.String({ description: 'Regular expression a string (or each list item) must match in full.' }),
    ),
    min: Type.Optional(Type.Number({ description: 'Smallest integer, or shortest string or list.' })),
    max: Type.Optional(Type.Number({ description: 'Largest integer, or longest string or list.' })),
    values: Type.Optional(Type.Array(Type.String(), { minItems: 1, description: 'Allowed values of an enum.' })),
    items: Type.Optional(
      Type.Union([Type.Literal('string'), Type.Literal('integer')], {
        description: 'Item type of a list.',
        default: 'string',
      }),
    ),
  },
  { ...strict, description: 'A typed input of the runbook.' },
);

export const Retry = Type.Object(
  {
    attempts: Type.Integer({
      minimum: 1,
      maximum: 100,
      description: 'Total attempts, the first included.',
      default: 1,
    }),
    backoff: Type.Optional(Duration('Wait before the second attempt; doubles each time.', { default: '5s' })),
    maxBackoff: Type.Optional(Duration('Upper bound of the wait between attempts.', { default: '5m' })),
  },
  { ...strict, description: 'Retry the step on failure.' },
);

export const Output = Type.Object(
  {
    from: Type.Union(
      [
        Type.Literal('stdout'),
        Type.Literal('stderr'),
        Type.Literal('exitCode'),
        Type.Literal('json'),
        Type.Literal('status'),
        Type.Literal('body'),
      ],
      { description: 'What to capture: output text, exit code, HTTP status or body, or a field of JSON output.' },
    ),
    path: Type.Optional(
      Type.String({ description: 'For `json`: a dotted path into the parsed output, e.g. `replication.lag`.' }),
    ),
    trim: Type.Optional(Type.Boolean({ description: 'Strip surrounding white space from text.', default: true })),
  },
  { ...strict, description: 'A named value captured from the step, available later as steps.ID.outputs.NAME.' },
);

export const SshAction = Type.Object(
  {
    run: Type.Optional(Type.String({ description: 'Shell command; `${{ }}` values are shell-quoted.' })),
    script: Type.Optional(Type.String({ description: 'Multi-line script, uploaded then run with `bash`.' })),
    upload: Type.Optional(
      Type.Object(
        {
          src: Type.String({ description: 'Local file, relative to the runbook.' }),
          dest: Type.String({ description: 'Remote path.' }),
          mode: Type.Optional(
            Type.String({ pattern: '^0?[0-7]{3}$', description: 'Octal file mode.', default: '0644' }),
          ),
        },
        { ...strict, description: 'Copy a file to the host (SFTP, checksum-verified).' },
      ),
    ),
    sudo: Type.Optional(Type.Boolean({ description: 'Run as root via sudo.', default: false })),
    user: Type.Optional(Type.String({ description: 'Run as this user via sudo -u.' })),
    env: Type.Optional(
      NamedRecord('^[A-Za-z_][A-Za-z0-9_]*$', Type.String(), { description: 'Environment variables for the command.' }),
    ),
    cwd: Type.Optional(Type.String({ description: 'Working directory.' })),
    login: Type.Optional(
      Type.Object(
        {
          user: Type.String({ description: 'The account to log in as; may use `${{ }}`.' }),
          password: Type.String({
            pattern: '^secret:[a-z][a-z0-9_]*$',
            description: 'Its password: a declared secret, `secret:NAME`.',
          }),
        },
        {
          ...strict,
          description:
            "Log in as this account with this password (SSH password auth, a fresh connection) instead of the inventory's login, e.g. to prove a reset password works. No sudo.",
        },
      ),
    ),
    expectExit: Type.Optional(
      Type.Array(Type.Integer({ minimum: 0, maximum: 255 }), {
        minItems: 1,
        description: 'Exit codes that count as success.',
        default: [0],
      }),
    ),
  },
  { ...strict, description: 'Act on each target over SSH: exactly one of run, script, upload.' },
);

export const SecretRef = Type.String({
  pattern: '^secret:[a-z][a-z0-9_]*$',
  description: 'A declared secret, `secret:NAME`; resolved at the last moment, never logged.',
});

export const HttpAction = Type.Object(
  {
    url: Type.String({
      description: 'Request URL; may use `${{ }}` (URL-encoded where it is a query value: use encode()).',
    }),
    method: Type.Optional(
      Type.Union(
        ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'].map((m) => Type.Literal(m)),
        { default: 'GET', description: 'HTTP method.' },
      ),
    ),
    headers: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'Request headers.' })),
    json: Type.Optional(Type.Unknown({ description: 'JSON body; string leaves may use `${{ }}`.' })),
    body: Type.Optional(Type.String({ description: 'Raw body.' })),
    auth: Type.Optional(
      Type.Object(
        {
          bearer: Type.Optional(SecretRef),
          basic: Type.Optional(Type.Object({ user: Type.String(), password: SecretRef }, strict)),
        },
        { ...strict, description: 'Credentials, from declared secrets only.' },
      ),
    ),
    expect: Type.Optional(
      Type.Object(
        {
          status: Type.Optional(
            Type.Array(Type.Integer({ minimum: 100, maximum: 599 }), { minItems: 1, default: [200] }),
          ),
        },
        { ...strict, description: 'What counts as success.' },
      ),
    ),
    tlsVerify: Type.Optional(Type.Boolean({ default: true, description: 'Verify the server certificate.' })),
  },
  { ...strict, description: 'An HTTP(S) request.' },
);

export const Approvers = Type.Object(
  {
    users: Type.Optional(Type.Array(Type.String(), { description: 'User names allowed to decide.' })),
    groups: Type.Optional(Type.Array(Type.String(), { description: 'Groups whose members may decide.' })),
  },
  { ...strict, description: 'Who may approve or reject.' },
);

export const Approval = Type.Object(
  {
    message: Type.Optional(Type.String({ description: 'What the approvers are asked.' })),
    approvers: Approvers,
    quorum: Type.Optional(Type.Integer({ minimum: 1, default: 1, description: 'Approvals needed.' })),
    timeout: Type.Optional(Duration('How long to wait for a decision.', { default: '1h' })),
    onTimeout: Type.Optional(
      Type.Union([Type.Literal('reject'), Type.Literal('escalate')], {
        default: 'reject',
        description: 'What a timeout means.',
      }),
    ),
  },
  { ...strict, description: 'Wait for people to approve.' },
);

export const Until = Type.Object(
  {
    condition: Type.Optional(Expr('Expression over `result` that must hold; default: the step succeeded.')),
    every: Duration('Pause between checks.', { default: '5s' }),
    timeout: Duration('Give up after this long.'),
  },
  { ...strict, description: 'Repeat the step until it succeeds (wait-until / poll).' },
);

const stepKinds = {
  ssh: Type.Optional(SshAction),
  http: Type.Optional(HttpAction),
  sleep: Type.Optional(Duration('Pause for this long.')),
  approval: Type.Optional(Approval),
  notify: Type.Optional(
    Type.Object(
      {
        channel: Type.String({ description: 'Notification channel name from the engine configuration.' }),
        message: Type.String({ description: 'Text; may use `${{ }}`.' }),
      },
      { ...strict, description: 'Send a message.' },
    ),
  ),
  runbook: Type.Optional(
    Type.Object(
      {
        name: Type.String({ pattern: NAME_PATTERN, description: 'The sub-runbook to run as a child workflow.' }),
        params: Type.Optional(
          Type.Record(Type.String(), Type.Unknown(), { description: 'Its params; values may use `${{ }}`.' }),
        ),
      },
      { ...strict, description: 'Run another runbook.' },
    ),
  ),
};

/** Step kinds: exactly one of these keys per step. */
export const STEP_KINDS = ['ssh', 'http', 'sleep', 'approval', 'notify', 'runbook', 'parallel'] as const;
export type StepKind = (typeof STEP_KINDS)[number];

export const Step = Type.Recursive(
  (Self) =>
    Type.Object(
      {
        id: Id('Unique step id; later steps read its outputs as steps.ID.'),
        name: Type.Optional(Type.String({ description: 'Human-readable title.' })),
        description: Type.Optional(Type.String({ description: 'What the step does and why.' })),
        when: Type.Optional(Expr('Run the step only when this expression is true.')),
        retry: Type.Optional(Retry),
        timeout: Type.Optional(Duration('Fail the step after this long.')),
        until: Type.Optional(Until),
        continueOnError: Type.Optional(
          Type.Boolean({ default: false, description: 'A failure is recorded but does not stop the run.' }),
        ),
        outputs: Type.Optional(NamedRecord(ID_PATTERN, Output, { description: 'Values to capture.' })),
        zone: Type.Optional(Type.String({ description: "Task queue of the worker in the hosts' network zone." })),
        targets: Type.Optional(
          Type.String({
            description:
              'Run this step on these hosts (a selector, may use `${{ }}`) instead of the current target, e.g. to fence a primary while acting on its standby.',
          }),
        ),
        rollback: Type.Optional(
          Type.Array(Self, { description: 'Undo steps run if a later step fails or the run is cancelled.' }),
        ),
        ...stepKinds,
        parallel: Type.Optional(
          Type.Object(
            {
              steps: Type.Array(Self, { minItems: 1 }),
              limit: Type.Optional(Type.Integer({ minimum: 1, description: 'At most this many at once.' })),
            },
            { ...strict, description: 'Run these steps at once.' },
          ),
        ),
      },
      { ...strict, description: 'One step: exactly one of ssh, http, sleep, approval, notify, runbook, parallel.' },
    ),
  { $id: 'Step' },
);

/** Where Runbook refers to Step: `#/$defs/Step` of the generated document. */
const StepRef = Type.Unsafe<Static<typeof Step>>({ $ref: '#/$defs/Step' });

export const Strategy = Type.Object(
  {
    type: Type.Optional(
      Type.Union([Type.Literal('rolling'), Type.Literal('parallel')], {
        default: 'rolling',
        description: 'Batches one after another, or all targets at once.',
      }),
    ),
    batch: Type.Optional(
      Type.Union(
        [
          Type.Integer({ minimum: 1 }),
          Type.String({ pattern: PERCENT_PATTERN }),
          Type.Array(Type.Union([Type.Integer({ minimum: 1 }), Type.String({ pattern: PERCENT_PATTERN })]), {
            minItems: 1,
          }),
        ],
        {
          description: 'Batch size: a count, a percentage, or a ramp like [1, 5, "25%"] whose last entry repeats.',
          default: 1,
        },
      ),
    ),
    limit: Type.Optional(Type.Integer({ minimum: 1, description: 'parallel: at most this many targets at once.' })),
    maxFailures: Type.Optional(
      Count('Stop starting new targets once more than this many (or this percentage) failed.'),
    ),
  },
  { ...strict, description: 'How the steps are spread over the targets.' },
);

export const SecretDecl = Type.Object(
  {
    provider: Type.Union([Type.Literal('env'), Type.Literal('file'), Type.Literal('exec')], {
      description: 'Where the value comes from.',
    }),
    key: Type.String({
      description:
        "Variable name (env), file path (file; relative to the worker's RUNBOOK_SECRETS_DIR, else its working directory) or command (exec).",
    }),
    description: Type.Optional(Type.String()),
    generate: Type.Optional(
      Type.Object(
        {
          length: Type.Optional(
            Type.Integer({ minimum: 16, maximum: 256, default: 24, description: 'Characters (letters and digits).' }),
          ),
        },
        {
          ...strict,
          description:
            'A new random value for each run: the first step of the run that uses it generates it and stores it through its provider (file only); every later use in the run reads the stored value.',
        },
      ),
    ),
  },
  { ...strict, description: 'A secret the runbook uses; referenced as secret:NAME.' },
);

/** One label matcher: a string is equality; the object forms match a regex (anchored, like Alertmanager's) or negate. */
export const LabelMatcher = Type.Union(
  [
    Type.String({ description: 'The label equals this.' }),
    Type.Object(
      { regex: Type.String({ minLength: 1, description: 'The whole label value matches this regex.' }) },
      strict,
    ),
    Type.Object({ not: Type.String({ description: 'The label is absent or differs from this.' }) }, strict),
    Type.Object(
      { notRegex: Type.String({ minLength: 1, description: 'The label is absent or does not match this regex.' }) },
      strict,
    ),
  ],
  { description: 'A label matcher: `value`, `{ regex }`, `{ not }` or `{ notRegex }`.' },
);

const Window = (description: string, max: number, window: string) =>
  Type.Object(
    {
      max: Type.Integer({ minimum: 0, maximum: 100_000, default: max, description: 'At most this many runs' }),
      window: Type.Optional(Duration('within this long.', { default: window })),
    },
    { ...strict, description },
  );

/** Guardrails of alert-started runs; every limit has a conservative default. */
export const AlertLimits = Type.Object(
  {
    maxTargets: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 10_000,
        default: 5,
        description: 'Blast radius: an alert whose run would act on more targets is suppressed.',
      }),
    ),
    concurrencyPerTarget: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 100,
        default: 1,
        description:
          "Remediations of this runbook running at once on one target; more are suppressed (they'd queue on the host lock).",
      }),
    ),
    rate: Type.Optional(Window('Runs of this runbook started by alerts. @default 10 per 1h', 10, '1h')),
    perTarget: Type.Optional(Window('Runs acting on one target. @default 3 per 1h', 3, '1h')),
    breaker: Type.Optional(
      Type.Object(
        {
          failures: Type.Optional(
            Type.Integer({
              minimum: 1,
              maximum: 100_000,
              default: 3,
              description: 'Open after this many failed remediations within the window.',
            }),
          ),
          remediations: Type.Optional(
            Type.Integer({
              minimum: 1,
              maximum: 100_000,
              default: 20,
              description: 'Open after this many remediations within the window.',
            }),
          ),
          window: Type.Optional(Duration('The window both counts are taken over.', { default: '1h' })),
          cooldown: Type.Optional(
            Duration('An open breaker closes after this long (or on `runbook triggers reset`). @default the window'),
          ),
        },
        {
          ...strict,
          description:
            'Circuit breaker: once open, alerts only escalate. @default 3 failures or 20 runs per 1h, 1h cooldown',
        },
      ),
    ),
  },
  { ...strict, description: 'Guardrails.' },
);

/** The alert rule: which alerts start this runbook, with which params, within which limits. */
export const AlertRule = Type.Object(
  {
    match: Type.Record(Type.String({ minLength: 1, maxLength: 128 }), LabelMatcher, {
      minProperties: 1,
      description: 'Label matchers that must all hold.',
    }),
    params: Type.Optional(
      Type.Record(Type.String(), Type.String(), {
        description: 'Params from the alert, e.g. `${{ alert.labels.service }}`; checked like any input.',
      }),
    ),
    limits: Type.Optional(AlertLimits),
    onResolved: Type.Optional(
      Type.Union([Type.Literal('cancel-approval'), Type.Literal('record')], {
        default: 'cancel-approval',
        description:
          'When the alert resolves: reject approvals the run still waits for (no change made), or only record it.',
      }),
    ),
  },
  { ...strict, description: 'Start this runbook from matching alerts.' },
);

/** A calendar spec field: a number, or text as in cron (`1-5`, `MON-FRI`, `0-59/15`, `1,15`). */
const CalendarField = (description: string) =>
  Type.Optional(
    Type.Union([Type.Integer({ minimum: 0, maximum: 59 }), Type.String({ minLength: 1, maxLength: 100 })], {
      description,
    }),
  );

/** When, as labelled fields (Temporal's calendar spec). */
export const CalendarSpecDoc = (defaults: string, description: string) =>
  Type.Object(
    {
      second: CalendarField(`0-59. @default ${defaults === '*' ? '*' : '0'}`),
      minute: CalendarField(`0-59. @default ${defaults === '*' ? '*' : '0'}`),
      hour: CalendarField(`0-23. @default ${defaults === '*' ? '*' : '0'}`),
      dayOfMonth: CalendarField('1-31. @default *'),
      month: CalendarField('1-12 or JAN-DEC. @default *'),
      dayOfWeek: CalendarField('0-6 (0 = Sunday) or SUN-SAT. @default *'),
      comment: Type.Optional(Type.String({ maxLength: 200 })),
    },
    { ...strict, minProperties: 1, description },
  );

export const OVERLAP_POLICIES = [
  'skip',
  'buffer-one',
  'buffer-all',
  'cancel-other',
  'terminate-other',
  'allow-all',
] as const;

/** `on.schedule`: a Temporal Schedule that `runbook schedules sync` keeps in step with this file. */
export const ScheduleTrigger = Type.Object(
  {
    cron: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 200,
        description:
          'Cron expression in `timezone`: 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first.',
      }),
    ),
    calendar: Type.Optional(
      CalendarSpecDoc(
        '0',
        'When, as labelled fields, e.g. `{ dayOfWeek: SUN, hour: 23, minute: 30 }` (unset second/minute/hour: 0).',
      ),
    ),
    every: Type.Optional(
      Duration('A fixed interval instead (`30s`, `1h`, `1d`), counted from the Unix epoch plus `offset`.'),
    ),
    offset: Type.Optional(Duration('With `every`: shift the interval, e.g. every 1d offset 2h = 02:00 UTC daily.')),
    skip: Type.Optional(
      Type.Array(CalendarSpecDoc('*', 'A time or day not to run.'), {
        maxItems: 50,
        description:
          'Times not to run, e.g. `{ month: 12, dayOfMonth: 25 }` skips all of 25 December (unset second/minute/hour mean every one here).',
      }),
    ),
    timezone: Type.Optional(
      Type.String({ default: 'UTC', maxLength: 64, description: 'IANA time zone of `cron`, `calendar` and `skip`.' }),
    ),
    jitter: Type.Optional(Duration('Start each run up to this much later, at random (spreads load). @default 0s')),
    overlap: Type.Optional(
      Type.Union(
        OVERLAP_POLICIES.map((p) => Type.Literal(p)),
        {
          default: 'skip',
          description:
            'When the previous run is still going: skip this one (counted as skipped), buffer one or all, cancel or terminate the other, or allow all.',
        },
      ),
    ),
    catchupWindow: Type.Optional(
      Duration('After an outage, run missed times no older than this (older ones are counted as missed). @default 15m'),
    ),
    pauseOnFailure: Type.Optional(
      Type.Boolean({ default: false, description: 'Pause the schedule when a run it started fails.' }),
    ),
    params: Type.Optional(
      Type.Record(Type.String(), Type.Unknown(), { description: 'Params of every run it starts.' }),
    ),
  },
  { ...strict, description: 'Start this runbook on a schedule: exactly one of cron, calendar or every.' },
);

/** `window`: the change calendars a run must be inside of, and what to do when one is closed. */
export const WindowPolicy = Type.Object(
  {
    calendars: Type.Array(Type.String({ pattern: '^[a-z][a-z0-9-]{0,62}$' }), {
      minItems: 1,
      maxItems: 20,
      description: 'Calendars of the calendar file that must all be open (global calendars always apply too).',
    }),
    policy: Type.Optional(
      Type.Union([Type.Literal('wait'), Type.Literal('fail')], {
        default: 'wait',
        description: 'When closed: wait for the next opening, or end the run as blocked.',
      }),
    ),
    cutoff: Type.Optional(
      Duration('Start no new batch this close to the window closing. @default 0s', { default: '0s' }),
    ),
    maxWait: Type.Optional(
      Duration('With `wait`: end as blocked when no opening comes within this. @default 7d', { default: '7d' }),
    ),
  },
  { ...strict, description: 'Maintenance window and freeze policy.' },
);

export const Runbook = Type.Object(
  {
    apiVersion: Type.Literal('runbooks/v1', { description: 'Language version.' }),
    kind: Type.Literal('Runbook'),
    metadata: Type.Object(
      {
        name: Type.String({ pattern: NAME_PATTERN, description: 'Runbook name; the file is NAME.yaml.' }),
        description: Type.Optional(Type.String({ description: 'What it does, shown in the UI memo and docs.' })),
        risk: Type.Optional(
          Type.Union([Type.Literal('low'), Type.Literal('medium'), Type.Literal('high')], {
            default: 'medium',
            description: 'high requires an approval before any change.',
          }),
        ),
        owner: Type.Optional(Type.String({ description: 'Team or person responsible.' })),
        tags: Type.Optional(Type.Array(Type.String())),
      },
      strict,
    ),
    params: Type.Optional(NamedRecord(ID_PATTERN, Param, { description: 'Typed inputs.' })),
    secrets: Type.Optional(NamedRecord(ID_PATTERN, SecretDecl, { description: 'Secrets by reference.' })),
    targets: Type.Optional(
      Type.String({
        description:
          'Target selector (group:web, host:a, label:k=v, !host:b, comma-separated) or an expression such as `${{ params.hosts }}`. Absent: the steps run once, with no host.',
      }),
    ),
    strategy: Type.Optional(Strategy),
    approval: Type.Optional(Approval),
    locks: Type.Optional(
      Type.Object(
        {
          hosts: Type.Union([Type.Literal('wait'), Type.Literal('fail')], {
            default: 'wait',
            description: 'When another run holds a target: wait for it, or fail fast.',
          }),
        },
        { ...strict, description: 'Host lock policy.' },
      ),
    ),
    steps: Type.Array(StepRef, { minItems: 1, description: 'Steps, in order, per target.' }),
    rollback: Type.Optional(
      Type.Array(StepRef, { description: 'Runbook-level undo steps, run newest first after a failure or cancel.' }),
    ),
    window: Type.Optional(WindowPolicy),
    on: Type.Optional(
      Type.Object(
        {
          alert: Type.Optional(AlertRule),
          schedule: Type.Optional(ScheduleTrigger),
        },
        { ...strict, description: 'Triggers.' },
      ),
    ),
  },
  { ...strict, description: 'A runbook: typed params, targets, a strategy, steps and rollback.' },
);

export type RunbookDoc = Static<typeof Runbook>;
export type StepDoc = Static<typeof Step>;
export type ParamDoc = Static<typeof Param>;
export type StrategyDoc = Static<typeof Strategy>;
export type SecretDeclDoc = Static<typeof SecretDecl>;

/** The JSON Schema document written to runbooks/runbook.schema.json (and given to ajv). */
export function runbookJsonSchema(): TSchema & Record<string, unknown> {
  const step = JSON.parse(JSON.stringify(Step).replaceAll('"$ref":"Step"', '"$ref":"#/$defs/Step"')) as Record<
    string,
    unknown
  >;
  delete step.$id;
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'https://runbook.dev/schemas/runbook.schema.json',
    title: 'Runbook',
    ...JSON.parse(JSON.stringify(Runbook)),
    $defs: { Step: step },
  };
}
