// Unit: param inputs from the command line (`plan` and `run` share cli/params.ts): a key given twice makes a list,
// `-p` beats `--params-json`, and a malformed argument is an operator error naming it.
import path from 'node:path';
import { paramInputs, parseParamPairs } from '../../cli/params';
import { UserError } from '../../common/errors';
import { loadRunbookFile } from '../../dsl/load';
import { coerceParams } from '../../dsl/params';

const root = path.join(__dirname, '..', '..');

describe('-p key=value', () => {
  test.each([
    ['one pair', ['note=hi'], { note: 'hi' }],
    ['several keys', ['note=hi', 'marker=m.txt'], { note: 'hi', marker: 'm.txt' }],
    ['a key given twice makes a list', ['host=a', 'host=b'], { host: ['a', 'b'] }],
    ['three times, in order', ['host=a', 'host=b', 'host=c'], { host: ['a', 'b', 'c'] }],
    ['the value keeps later = signs and may be empty', ['expr=a=b', 'empty='], { expr: 'a=b', empty: '' }],
    ['a key named like an Object method', ['constructor=x', 'constructor=y'], { constructor: ['x', 'y'] }],
  ])('%s', (_name, pairs, expected) => {
    expect(parseParamPairs(pairs)).toEqual(expected);
  });

  test('__proto__ is a key like any other (not dropped, prototype untouched), and so an unknown param', () => {
    const out = parseParamPairs(['__proto__=1', 'note=hi']);
    expect(Object.keys(out)).toEqual(['__proto__', 'note']);
    expect(Object.getOwnPropertyDescriptor(out, '__proto__')?.value).toBe('1');
    const spec = { note: { type: 'string' as const } };
    for (const name of ['__proto__', 'constructor', 'toString']) {
      const { errors } = coerceParams(spec, parseParamPairs([`${name}=1`, 'note=hi']), []);
      expect(errors.map((e) => [e.param, e.code])).toEqual([[name, expect.stringMatching(/unknown|RB/)]]);
      expect(errors[0]!.message).toMatch(/^unknown param/);
    }
  });

  test('--alert-label errors name their own flag', () => {
    expect(() => parseParamPairs(['x'], '--alert-label')).toThrow(
      new UserError('--alert-label x: expected key=value.'),
    );
  });

  test.each([['noequals'], ['=value']])('%s is refused, naming the argument', (pair) => {
    expect(() => parseParamPairs([pair])).toThrow(new UserError(`-p ${pair}: expected key=value.`));
  });
});

describe('paramInputs (every command that takes -p)', () => {
  test('a repeated -p key is a list, and each -p key replaces that key of --params-json', () => {
    expect(
      paramInputs({
        param: ['packages=openssl', 'packages=curl', 'reboot=false'],
        paramsJson: '{"reboot": true, "hosts": "group:web"}',
      }),
    ).toEqual({ packages: ['openssl', 'curl'], reboot: 'false', hosts: 'group:web' });
  });

  test('--params-json alone, typed values kept', () => {
    expect(paramInputs({ param: [], paramsJson: '{"packages": ["a"], "n": 3}' })).toEqual({ packages: ['a'], n: 3 });
  });

  test.each([
    ['not JSON', '{nope', /^--params-json is not valid JSON: /],
    ['a list', '[1]', /^--params-json must be a JSON object of param values\.$/],
    ['null', 'null', /^--params-json must be a JSON object of param values\.$/],
  ])('--params-json that is %s is an operator error', (_name, json, message) => {
    expect(() => paramInputs({ param: [], paramsJson: json })).toThrow(UserError);
    expect(() => paramInputs({ param: [], paramsJson: json })).toThrow(message);
  });

  test('the list a repeated key makes is what a list param takes', () => {
    const rb = loadRunbookFile(path.join(root, 'runbooks', 'rolling-patch.yaml')).runbook!;
    const { values, errors } = coerceParams(
      rb.params ?? {},
      paramInputs({ param: ['packages=openssl', 'packages=curl'] }),
      [],
    );
    expect(errors).toEqual([]);
    expect(values.packages).toEqual(['openssl', 'curl']);
  });
});
