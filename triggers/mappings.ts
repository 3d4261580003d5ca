// Node side (loadMappings reads one file; the rest is pure). Generic webhook mappings: a declared field mapping from
// an arbitrary JSON payload to alerts (dot paths only: no code, no expressions), the ones shipped for Nagios,
// Icinga 2, Zabbix and Datadog, and the loader of a user's mapping file (YAML or JSON, checked against one TypeBox
// schema, every problem located as `FILE:LINE:COL: NAME.field: message [CODE]`).
import fs from 'node:fs';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value, ValueErrorType } from '@sinclair/typebox/value';
import { CODES, formatProblem, sortProblems, type Code, type Problem } from '../dsl/problems';
import { NAME_PATTERN } from '../dsl/schema';
import { parseYamlSource, tooLargeProblem, type FieldPath } from '../dsl/yaml-source';

/** A mapping file's largest size. */
export const MAPPING_FILE_MAX_BYTES = 1024 * 1024;
/** Names the built-in receivers use as `source`: a mapping may not take them. */
const RESERVED = ['alertmanager', 'grafana'];

const Path = (description: string) =>
  Type.String({
    maxLength: 256,
    pattern: '^[^.\\u0000-\\u001f\\u007f]+(\\.[^.\\u0000-\\u001f\\u007f]+){0,15}$',
    description: `a dot path such as a.b.0.c (${description})`,
  });
const FieldMap = (what: string) =>
  Type.Record(Type.String({ pattern: '^[^\\u0000-\\u001f\\u007f]{1,128}$' }), Path(`where the ${what} value is`), {
    additionalProperties: false,
    maxProperties: 64,
  });
const StatusValues = (description: string) =>
  Type.Array(Type.Union([Type.String({ minLength: 1, maxLength: 128 }), Type.Integer()]), {
    minItems: 1,
    maxItems: 32,
    description,
  });

/** A mapping as written in a file: `name` is optional there (the key names it). */
export const MappingSchema = Type.Object(
  {
    name: Type.Optional(Type.String({ pattern: NAME_PATTERN, maxLength: 64, description: 'the same as its key' })),
    description: Type.Optional(Type.String({ maxLength: 2000 })),
    alerts: Type.Optional(Path('an array of alert objects; absent: the body is one alert')),
    labels: FieldMap('label'),
    annotations: Type.Optional(FieldMap('annotation')),
    status: Type.Object(
      {
        path: Path('the status field'),
        resolved: StatusValues('values meaning resolved, compared without case'),
        firing: Type.Optional(StatusValues('values meaning firing; any other value is refused')),
      },
      { additionalProperties: false },
    ),
    fingerprint: Type.Optional(
      Type.Union([Path('the fingerprint'), Type.Array(Path('part of the fingerprint'), { minItems: 1, maxItems: 8 })], {
        description: 'a dot path or a list of them',
      }),
    ),
    startsAt: Type.Optional(Path('an ISO 8601 date or epoch seconds')),
    tags: Type.Optional(Path('"k:v,k2:v2" or ["k:v"] tags merged into the labels')),
  },
  { additionalProperties: false },
);

/** A declared field mapping from an arbitrary JSON payload to alerts. Paths are dot paths ("a.b.0.c"). */
export interface Mapping {
  name: string;
  description?: string;
  /** Path to an array of alert objects; absent: the body is one alert. */
  alerts?: string;
  /** Label name → path inside an alert object. Must have `alertname`. Keep values that change (state) out. */
  labels: Record<string, string>;
  annotations?: Record<string, string>;
  /** A value (string or number, compared as a string without case) in `resolved` → resolved; else firing, and if
   * `firing` is given the value must be in it (else the delivery is refused). */
  status: { path: string; resolved: string[]; firing?: string[] };
  /** Path(s) whose values, hashed, make the fingerprint; absent: computed from the labels. */
  fingerprint?: string | string[];
  /** Path to an ISO 8601 date or epoch seconds (a number or digits; from 1e11 on, milliseconds). */
  startsAt?: string;
  /** Path to a "k:v,k2:v2" string or ["k:v"] array (Datadog's $TAGS) merged into labels (the mapping's win). */
  tags?: string;
}

/**
 * Nagios and Icinga 2 have no webhook: a notification command posts this JSON (one shape for both):
 *   {"type": "PROBLEM", "host": "web-01", "service": "HTTP", "state": "CRITICAL",
 *    "output": "HTTP CRITICAL - connection refused", "since": "1718012345", "address": "10.0.0.5"}
 * Only PROBLEM and RECOVERY are accepted (restrict the notification's types to them); host notifications send
 * "service": "HOST" and the host's state, output and last state change.
 *
 * Nagios (jq 1.6+ builds the JSON, so no value is spliced into JSON by hand; `$$` is Nagios's literal `$`):
 *   define command {
 *     command_name  notify-service-by-runbook
 *     command_line  /usr/bin/jq -cn --arg type "$NOTIFICATIONTYPE$" --arg host "$HOSTNAME$" --arg service "$SERVICEDESC$" --arg state "$SERVICESTATE$" --arg output "$SERVICEOUTPUT$" --arg since "$LASTSERVICESTATECHANGE$" --arg address "$HOSTADDRESS$" '$$ARGS.named' | /usr/bin/curl -fsS --max-time 10 -H 'Content-Type: application/json' -H 'Authorization: Bearer TOKEN' --data-binary @- https://RECEIVER/alerts/generic/nagios
 *   }
 * Icinga 2 (values passed as environment variables, read by jq's `env`):
 *   object NotificationCommand "runbook-service" {
 *     command = [ "/bin/sh", "-c", "jq -cn '{type: env.TYPE, host: env.HOST, service: env.SERVICE, state: env.STATE, output: env.OUTPUT, since: env.SINCE, address: env.ADDRESS}' | curl -fsS --max-time 10 -H 'Content-Type: application/json' -H 'Authorization: Bearer TOKEN' --data-binary @- https://RECEIVER/alerts/generic/icinga" ]
 *     env = { TYPE = "$notification.type$", HOST = "$host.name$", SERVICE = "$service.name$",
 *             STATE = "$service.state$", OUTPUT = "$service.output$", SINCE = "$service.last_state_change$",
 *             ADDRESS = "$host.address$" }
 *   }
 *   apply Notification "runbook" to Service { command = "runbook-service"; types = [ Problem, Recovery ]; ... }
 */
const nagiosLike = (name: 'nagios' | 'icinga', description: string): Mapping => ({
  name,
  description,
  labels: { alertname: 'service', host: 'host', service: 'service' },
  annotations: { summary: 'output', state: 'state', address: 'address' },
  status: { path: 'type', resolved: ['RECOVERY'], firing: ['PROBLEM'] },
  startsAt: 'since',
});

/**
 * Zabbix: a webhook media type (Zabbix 5.4+, `HttpRequest`) with these parameters
 *   url = https://RECEIVER/alerts/generic/zabbix, token = TOKEN, event_id = {EVENT.ID}, event_value = {EVENT.VALUE}
 *   (1 problem, 0 recovery), event_name = {EVENT.NAME}, event_severity = {EVENT.SEVERITY},
 *   event_tags = {EVENT.TAGS} ("tag:value, tag2:value2"), event_update_status = {EVENT.UPDATE.STATUS},
 *   host = {HOST.HOST}, host_name = {HOST.NAME}, trigger_id = {TRIGGER.ID}, trigger_name = {TRIGGER.NAME},
 *   message = {ALERT.MESSAGE}
 * and this script (it posts the parameters as JSON, without url and token):
 *   var p = JSON.parse(value), req = new HttpRequest(), url = p.url;
 *   req.addHeader('Content-Type: application/json'); req.addHeader('Authorization: Bearer ' + p.token);
 *   delete p.url; delete p.token;
 *   req.post(url, JSON.stringify(p));
 *   if (req.getStatus() < 200 || req.getStatus() > 299) throw 'receiver answered ' + req.getStatus();
 *   return 'OK';
 * {EVENT.ID} is the problem's event id in its recovery message too, so it is the fingerprint. Leave the action's
 * update operations off for this media type (an update is another firing delivery).
 */
const zabbix: Mapping = {
  name: 'zabbix',
  description: 'Zabbix webhook media type (see triggers/mappings.ts for its parameters and script)',
  labels: { alertname: 'trigger_name', host: 'host', trigger_id: 'trigger_id', severity: 'event_severity' },
  annotations: { summary: 'event_name', description: 'message', host_name: 'host_name' },
  status: { path: 'event_value', resolved: ['0'], firing: ['1'] },
  fingerprint: 'event_id',
  tags: 'event_tags',
};

/**
 * Datadog: a webhook (Integrations → Webhooks) to https://RECEIVER/alerts/generic/datadog, with the custom header
 * `Authorization: Bearer TOKEN` and this payload:
 *   {"alert_id": "$ALERT_ID", "transition": "$ALERT_TRANSITION", "title": "$ALERT_TITLE",
 *    "hostname": "$HOSTNAME", "scope": "$ALERT_SCOPE", "tags": "$TAGS", "aggreg_key": "$AGGREG_KEY",
 *    "cycle_key": "$ALERT_CYCLE_KEY", "priority": "$ALERT_PRIORITY", "status": "$ALERT_STATUS",
 *    "message": "$TEXT_ONLY_MSG", "link": "$LINK", "date": "$DATE"}
 * Datadog has no stable alert name ($ALERT_TITLE carries the transition), so alertname is the monitor id; rules
 * match on tags (`service`, `env`). The fingerprint is the monitor and its group's scope. "No Data" and "Null"
 * transitions are refused.
 */
const datadog: Mapping = {
  name: 'datadog',
  description: 'Datadog webhook with the payload in triggers/mappings.ts',
  labels: { alertname: 'alert_id', host: 'hostname', priority: 'priority' },
  annotations: { summary: 'title', description: 'message', status: 'status', link: 'link', scope: 'scope' },
  status: {
    path: 'transition',
    resolved: ['Recovered'],
    firing: ['Triggered', 'Re-Triggered', 'Warn', 'Re-Warn', 'Renotify'],
  },
  fingerprint: ['alert_id', 'scope'],
  tags: 'tags',
};

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** The mappings shipped with the receiver. */
export const SHIPPED_MAPPINGS: Readonly<Record<'nagios' | 'icinga' | 'zabbix' | 'datadog', Mapping>> = deepFreeze({
  nagios: nagiosLike('nagios', 'Nagios notification command posting JSON (see triggers/mappings.ts)'),
  icinga: nagiosLike('icinga', 'Icinga 2 NotificationCommand posting JSON (see triggers/mappings.ts)'),
  zabbix,
  datadog,
});

const ENTRY_FIELDS = Object.keys(MappingSchema.properties).join(', ');

/** What is wrong with one entry of a mapping file, as [path inside the entry, message, code]. */
export function mappingProblems(value: unknown): [FieldPath, string, Code][] {
  const out: [FieldPath, string, Code][] = [];
  const seen = new Set<string>();
  for (const e of Value.Errors(MappingSchema, value)) {
    if (seen.has(e.path)) continue; // "missing" then "expected object" for one field: the first says it
    seen.add(e.path);
    const path: FieldPath = e.path
      .split('/')
      .slice(1)
      .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
      .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
    const parent = path[path.length - 2];
    let message: string;
    let code: Code = CODES.wrongType;
    if (e.type === ValueErrorType.ObjectAdditionalProperties) {
      const inMap = path.length === 2 && (parent === 'labels' || parent === 'annotations');
      message = inMap
        ? 'not a valid name: 1 to 128 printable characters'
        : `unknown field; a mapping accepts only ${path.length === 1 ? ENTRY_FIELDS : 'path, resolved, firing'}`;
      code = inMap ? CODES.badName : CODES.unknownKey;
    } else if (e.type === ValueErrorType.ObjectRequiredProperty) {
      message = 'missing';
      code = CODES.missingField;
    } else {
      const schema = e.schema as TSchema & Record<string, unknown>;
      const limit = (what: string, n: unknown) => `${what} ${String(n)}`;
      message =
        e.type === ValueErrorType.ArrayMinItems
          ? `needs at least ${String(schema.minItems)} value${schema.minItems === 1 ? '' : 's'}`
          : e.type === ValueErrorType.ArrayMaxItems
            ? limit('may have at most', schema.maxItems)
            : e.type === ValueErrorType.ObjectMaxProperties
              ? limit('may have at most', schema.maxProperties)
              : e.type === ValueErrorType.StringMaxLength
                ? limit('longer than the maximum of', schema.maxLength)
                : schema.description
                  ? `expected ${schema.description}`
                  : e.message;
    }
    out.push([path, message, code]);
    if (out.length >= 20) break;
  }
  if (out.length === 0 && typeof (value as Mapping).labels?.alertname !== 'string')
    out.push([['labels'], 'needs an alertname label', CODES.missingField]);
  return out;
}

/**
 * Reads a YAML or JSON file of mappings `{NAME: Mapping}` (NAME like a runbook name; `name` inside, if given, must
 * match) and returns them merged over SHIPPED_MAPPINGS (a file may override a shipped name). Throws an Error
 * listing every problem, each as `FILE:LINE:COL: NAME.field: message [CODE]`. At most 1 MiB.
 */
export function loadMappings(file: string): Record<string, Mapping> {
  const fail = (problems: Problem[]): never => {
    throw new Error(`${file}: invalid mapping file\n${problems.map(formatProblem).join('\n')}`);
  };
  const limits = { maxBytes: MAPPING_FILE_MAX_BYTES, what: 'a mapping file' };
  const bytes = fs.statSync(file).size;
  if (bytes > MAPPING_FILE_MAX_BYTES) fail([tooLargeProblem(file, bytes, limits)]);
  const src = parseYamlSource(file, fs.readFileSync(file, 'utf8'), limits);
  if (src.problems.length > 0) fail(src.problems);
  if (typeof src.data !== 'object' || src.data === null || Array.isArray(src.data))
    fail([src.problem([], 'expected a mapping of NAME: {labels, status, ...}', CODES.wrongType)]);
  const problems: Problem[] = [];
  const out: Record<string, Mapping> = Object.assign(Object.create(null), SHIPPED_MAPPINGS);
  for (const [name, value] of Object.entries(src.data as Record<string, unknown>)) {
    if (!new RegExp(NAME_PATTERN).test(name) || name.length > 64 || RESERVED.includes(name)) {
      const why = RESERVED.includes(name) ? 'is a built-in receiver' : 'must match ^[a-z][a-z0-9-]*$ (64 at most)';
      problems.push(src.problem([name], `the mapping name ${why}`, CODES.badName, { at: 'key' }));
      continue;
    }
    const found = mappingProblems(value);
    for (const [path, message, code] of found)
      problems.push(src.problem([name, ...path], message, code, { at: code === CODES.unknownKey ? 'key' : 'value' }));
    const entry = value as Static<typeof MappingSchema>;
    if (found.length === 0 && entry.name !== undefined && entry.name !== name)
      problems.push(src.problem([name, 'name'], `must be ${name}, the key`, CODES.nameMismatch));
    if (found.length > 0 || problems.length > 0) continue;
    const { resolved, firing } = entry.status;
    const status: Mapping['status'] = { path: entry.status.path, resolved: resolved.map(String) };
    if (firing) status.firing = firing.map(String);
    out[name] = deepFreeze({ ...entry, name, status });
  }
  if (problems.length > 0) fail(sortProblems(problems));
  return out;
}
