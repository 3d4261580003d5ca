// Unit (table-driven): every malformed runbook and inventory in test/fixtures/invalid is rejected with its exact
// message, code and line:col; and `runbook validate` reports all of them in one run, without a stack trace.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { checkFile } from '../../cli/language';
import { formatProblem } from '../../dsl/problems';

const dir = path.join(__dirname, '..', 'fixtures', 'invalid');
const rel = (f: string) => path.relative(process.cwd(), path.join(dir, f));

/** fixture file -> the problems it must produce, as `line:col: path: message [code]`. */
const EXPECTED: [string, string[]][] = [
  [
    'alert-unknown-param.yaml',
    [
      '16:7: on.alert.params.servce: unknown param "servce" (did you mean "service"?); an alert can only fill declared params [RB1202]',
      '17:16: on.alert.params.service: invalid expression: cannot parse `alert.lables.service +`: Unexpected token: EOF [RB1204]',
    ],
  ],
  ['alert-match-not-map.yaml', ['14:12: on.alert.match: expected a mapping, found a list [RB1102]']],
  [
    'bad-batch.yaml',
    ['12:35: strategy.batch: expected an integer or a percentage like 25% or a list; found string "half" [RB1102]'],
  ],
  [
    'bad-default.yaml',
    ['8:36: params.count.default: default does not fit the param: expected an integer, got "many" [RB1209]'],
  ],
  [
    'bad-duration.yaml',
    ['12:14: steps[0].timeout: expected a duration like 500ms, 30s, 5m, 2h or 1d; found string "5 minutes" [RB1105]'],
  ],
  ['bad-expect-exit.yaml', ['11:76: steps[0].ssh.expectExit[1]: must be <= 255; found integer 256 [RB1107]']],
  [
    'bad-expression.yaml',
    ['11:36: steps[0].ssh.run: invalid expression: cannot parse `params.service +`: Unexpected token: EOF [RB1204]'],
  ],
  [
    'bad-http-method.yaml',
    [
      '13:55: steps[1].http.method: expected one of GET, HEAD, POST, PUT, PATCH, DELETE; found string "FETCH" (did you mean "PATCH"?) [RB1104]',
    ],
  ],
  ['bad-http-status.yaml', ['13:66: steps[1].http.expect.status[0]: must be >= 100; found integer 99 [RB1107]']],
  ['bad-lock-policy.yaml', ['12:17: locks.hosts: expected one of wait, fail; found string "block" [RB1104]']],
  [
    'bad-max-failures.yaml',
    ['12:26: strategy.maxFailures: expected an integer or a percentage like 25%; found integer -1 [RB1102]'],
  ],
  [
    'bad-name.yaml',
    [
      '4:9: metadata.name: expected a name of lowercase letters, digits and -, starting with a letter; found string "Bad_Name" [RB1105]',
    ],
  ],
  [
    'bad-param-name.yaml',
    [
      '7:3: params.Service-Name: invalid name "Service-Name": expected an id of lowercase letters, digits and _, starting with a letter [RB1106]',
    ],
  ],
  [
    'bad-param-pattern.yaml',
    ['7:37: params.service.pattern: invalid regular expression: /[a-z/u: Unterminated character class [RB1212]'],
  ],
  [
    'bad-param-type.yaml',
    [
      '7:20: params.service.type: expected one of string, integer, boolean, enum, list, duration, secret, targets; found string "float" [RB1104]',
    ],
  ],
  ['bad-risk.yaml', ['6:9: metadata.risk: expected one of low, medium, high; found string "critical" [RB1104]']],
  [
    'bad-rollback-step.yaml',
    [
      '14:5: rollback[0].notify.message: missing required key "message" [RB1103]',
      '14:29: rollback[0].notify.mesage: unknown key "mesage" (did you mean "message"?); expected one of: channel, message [RB1101]',
    ],
  ],
  [
    'bad-selector.yaml',
    [
      '8:10: targets: invalid selector term "group:web;rm": expected all, group:NAME, host:NAME, label:KEY=VALUE or a name, optionally prefixed with ! [RB1404]',
    ],
  ],
  [
    'bad-step-id.yaml',
    [
      '10:9: steps[0].id: expected an id of lowercase letters, digits and _, starting with a letter; found string "Restart-Service" [RB1105]',
    ],
  ],
  [
    'bad-step-targets.yaml',
    [
      '13:14: steps[1].targets: invalid selector term "host:db 1": expected all, group:NAME, host:NAME, label:KEY=VALUE or a name, optionally prefixed with ! [RB1404]',
    ],
  ],
  ['duplicate-key.yaml', ['13:5: duplicate key "timeout": a key may appear once per mapping [RB1002]']],
  ['duplicate-step-id.yaml', ['12:9: steps[1].id: duplicate step id "restart" (first used at steps[0]) [RB1201]']],
  [
    'empty-file.yaml',
    ['1:1: the file is empty: a runbook is a mapping with apiVersion, kind, metadata and steps [RB1102]'],
  ],
  ['enum-without-values.yaml', ['8:3: params.mode: an enum param needs "values" [RB1210]']],
  [
    'forward-step-ref.yaml',
    [
      '11:45: steps[0].notify.message: step "restart" runs after this one in `steps.restart.outputs.state`; only earlier steps can be referenced [RB1203]',
    ],
  ],
  [
    'high-risk-no-approval.yaml',
    [
      '6:9: metadata.risk: a high-risk runbook needs an approval before any change: add a top-level "approval" or make the first step an approval [RB1206]',
    ],
  ],
  ['inv-bad-port.yaml', ['2:37: hosts.web-1.port: expected an integer, found string "ssh" [RB1102]']],
  [
    'inv-ini-bad-assignment.ini',
    [
      '2:1: host "web-1": expected key=value, got "ansible_host" [RB1405]',
      '2:1: host "web-1": expected key=value, got "10.0.0.1" [RB1405]',
    ],
  ],
  [
    'inv-ini-bad-header.ini',
    ['1:1: malformed section header "[web": expected [group], [group:children] or [group:vars] [RB1405]'],
  ],
  ['inv-ini-bad-port.ini', ['2:1: host "web-1": ansible_port must be a number, got "twenty-two" [RB1405]']],
  ['inv-ini-bad-vars.ini', ['5:1: expected key=value in [web:vars], got "ansible_user" [RB1405]']],
  ['inv-ini-unknown-child.ini', ['6:1: group "prod" has unknown child group "db" [RB1402]']],
  ['inv-missing-address.yaml', ['2:3: hosts.web-1.address: missing required key "address" [RB1103]']],
  [
    'inv-unknown-host-in-group.yaml',
    ['5:16: groups.web[1]: group "web" lists unknown host "web-3" (did you mean "web-1"?) [RB1401]'],
  ],
  [
    'inv-unknown-key.yaml',
    [
      '2:3: hosts.web-1.address: missing required key "address" [RB1103]',
      '2:12: hosts.web-1.adress: unknown key "adress" (did you mean "address"?); expected one of: address, port, user, zone, labels, vars [RB1101]',
    ],
  ],
  [
    'inv-yaml-ansible-bad-key.yaml',
    [
      '4:7: all.children.web.host: unknown key "host" in group "web" (did you mean "hosts"?); expected hosts, vars, children [RB1101]',
    ],
  ],
  ['missing-name.yaml', ['3:1: metadata.name: missing required key "name" [RB1103]']],
  [
    'name-mismatch.yaml',
    [
      '4:9: metadata.name: name "restart-nginx" does not match the file name "name-mismatch.yaml"; runbooks are found by name, so call the file restart-nginx.yaml [RB1214]',
    ],
  ],
  [
    'result-outside-until.yaml',
    [
      '12:11: steps[0].when: unknown variable "result" in `result.exitCode == 0`; expressions start from params, target, origin, steps, alert, run, secrets [RB1211]',
    ],
  ],
  [
    'secret-param-default.yaml',
    [
      '8:38: params.password.default: default does not fit the param: expected a secret reference like secret:NAME (never the secret itself) [RB1209]',
    ],
  ],
  ['ssh-no-action.yaml', ['13:10: steps[1].ssh: an ssh step needs one of run, script, upload [RB1208]']],
  [
    'ssh-two-actions.yaml',
    ['14:7: steps[1].ssh: an ssh step takes one of run, script, upload, not run and script [RB1208]'],
  ],
  [
    'step-no-kind.yaml',
    [
      '12:5: steps[1]: step "nothing" does nothing: give it exactly one of ssh, http, sleep, approval, notify, runbook, parallel [RB1207]',
    ],
  ],
  [
    'step-two-kinds.yaml',
    ['14:5: steps[1].notify: step "both" has sleep and notify: a step does exactly one thing; split it [RB1207]'],
  ],
  ['steps-empty.yaml', ['9:8: steps: needs at least 1 item; found an empty list [RB1107]']],
  ['steps-not-list.yaml', ['10:3: steps: expected a list, found a mapping [RB1102]']],
  ['tab-indent.yaml', ['11:1: YAML syntax error: Tabs are not allowed as indentation [RB1001]']],
  [
    'unknown-output.yaml',
    [
      '14:43: steps[1].notify.message: step "restart" has no output "status" (did you mean "state"?); it declares state [RB1213]',
    ],
  ],
  [
    'unknown-param-ref.yaml',
    ['11:36: steps[0].ssh.run: unknown param "servce" in `params.servce` (did you mean "service"?) [RB1202]'],
  ],
  [
    'unknown-secret-expr.yaml',
    ['13:23: steps[1].ssh.run: unknown secret "pw" in `secrets.pw`; declare it under secrets [RB1205]'],
  ],
  [
    'unknown-secret-ref.yaml',
    [
      '15:23: steps[1].http.auth.bearer: unknown secret "tokn" (did you mean "token"?); declare it under secrets [RB1205]',
    ],
  ],
  [
    'unknown-step-key.yaml',
    [
      '12:5: steps[0].retires: unknown key "retires" (did you mean "retry"?); expected one of: id, name, description, when, retry, timeout, until, continueOnError, outputs, zone, targets, rollback, ssh, http, sleep, approval, notify, runbook, parallel [RB1101]',
    ],
  ],
  [
    'unknown-step-ref.yaml',
    [
      '13:43: steps[1].notify.message: unknown step "chek" in `steps.chek.outputs.state`; only earlier steps can be referenced [RB1203]',
    ],
  ],
  [
    'unknown-target-field.yaml',
    [
      '13:26: steps[1].http.url: unknown target field "hostname" in `target.hostname`; a target has name, address, port, user, zone, labels, vars [RB1211]',
    ],
  ],
  [
    'unknown-top-key.yaml',
    [
      '1:1: steps: missing required key "steps" [RB1103]',
      '9:1: stepz: unknown key "stepz" (did you mean "steps"?); expected one of: apiVersion, kind, metadata, params, secrets, targets, strategy, approval, locks, steps, rollback, window, on [RB1101]',
    ],
  ],
  [
    'unknown-variable.yaml',
    [
      '11:36: steps[0].ssh.run: unknown variable "env" in `env.HOME`; expressions start from params, target, origin, steps, alert, run, secrets [RB1211]',
    ],
  ],
  [
    'unquoted-flow-template.yaml',
    [
      '11:36: YAML syntax error: Unexpected flow-map-start at node end; a value containing ${{ }} inside a { } flow mapping must be quoted [RB1001]',
    ],
  ],
  [
    'unterminated-template.yaml',
    ['11:36: steps[0].ssh.run: invalid template: unterminated `${{`: expected `}}` [RB1204]'],
  ],
  ['upload-missing-dest.yaml', ['13:12: steps[1].ssh.upload.dest: missing required key "dest" [RB1103]']],
  ['values-on-string.yaml', ['7:47: params.service.values: "values" only applies to enum params, not string [RB1210]']],
  [
    'when-parse-error.yaml',
    ['12:11: steps[0].when: invalid expression: cannot parse `params.service ==`: Unexpected token: EOF [RB1204]'],
  ],
  ['wrong-api-version.yaml', ['1:13: apiVersion: expected "runbooks/v1", found string "runbooks/v2" [RB1104]']],
  ['wrong-kind.yaml', ['2:7: kind: expected "Runbook", found string "Runbok" [RB1104]']],
  [
    'yaml-billion-laughs.yaml',
    [
      '8:12: aliases expand to too much data (more than 100 alias resolutions, as in a "billion laughs" document); write the values out or use fewer aliases [RB1006]',
    ],
  ],
  [
    'yaml-too-deep.yaml',
    ['11:105: nesting deeper than 100 levels of lists and mappings; refusing to parse further [RB1004]'],
  ],
  [
    'expression-too-deep.yaml',
    [
      '10:11: steps[0].when: expression too complex: `(((((((((((((((((((((((((((((((((((((((((((((((((((((((((...` nests more than 64 levels deep; split it up [RB1215]',
    ],
  ],
  ['yaml-syntax.yaml', ["5:25: YAML syntax error: Missing closing 'quote [RB1001]"]],
];

test('the corpus holds at least 40 fixtures and the table covers every one', () => {
  const files = fs.readdirSync(dir).sort();
  expect(files.length).toBeGreaterThanOrEqual(40);
  expect(EXPECTED.map(([f]) => f).sort()).toEqual(files);
});

test.each(EXPECTED)('%s', (file, expected) => {
  const problems = checkFile(rel(file), false);
  expect(problems.map(formatProblem)).toEqual(expected.map((e) => `${rel(file)}:${e}`));
});

test('runbook validate reports every fixture in one run and exits 1', () => {
  const r = spawnSync('node', [path.join(__dirname, '..', '..', 'bin', 'runbook.js'), 'validate', rel('')], {
    encoding: 'utf8',
  });
  expect(r.status).toBe(1);
  expect(r.stderr).toBe('');
  const total = EXPECTED.reduce((n, [, e]) => n + e.length, 0);
  expect(r.stdout.trim().split('\n')).toHaveLength(total + 1);
  expect(r.stdout.trim().split('\n').at(-1)).toBe(`${EXPECTED.length} files checked: ${total} errors, 0 warnings`);
  for (const [file] of EXPECTED) expect(r.stdout).toContain(`${rel(file)}:`);
  expect(r.stdout).not.toMatch(/\n\s+at /);
});
