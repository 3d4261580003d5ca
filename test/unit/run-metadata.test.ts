// What the Web UI shows of a run before it starts (common/run-metadata.ts): the summary and details a starter
// passes as staticSummary/staticDetails. Exact formats, secrets never shown, and hostile input (huge, control
// characters, Markdown and HTML meant to become links or images) kept inert and bounded. The real renderer (the
// UI server's /render) gets the same hostile details in test/integration/ui.test.ts.
import { fitBytes, mdCode, mdText, oneLine, utf8Bytes } from '../../common/markdown';
import {
  DETAILS_MAX_BYTES,
  looksSecret,
  runDetails,
  runSummary,
  SUMMARY_MAX_BYTES,
  type RunbookFacts,
} from '../../common/run-metadata';
import type { RunbookInput } from '../../dsl/run-input';
import { secretToken } from '../../dsl/expr';

const restart: RunbookFacts = {
  metadata: { name: 'restart-service', description: 'Restart a unit and wait for it.', risk: 'medium' },
  params: {
    service: { type: 'string' },
    hosts: { type: 'targets', default: 'group:web' },
    password: { type: 'secret' },
    token_count: { type: 'integer' },
  },
  targets: '${{ params.hosts }}',
};

const input: RunbookInput = {
  runbook: 'restart-service',
  params: { service: 'nginx', password: 'secret:db_admin', token_count: 3 },
  initiator: 'alice',
  trigger: 'manual',
};

describe('with the runbook known', () => {
  test('the summary: name, targets (the param filled in), params in declared order, trigger and initiator', () => {
    expect(runSummary(input, restart)).toBe(
      '**restart\\-service** on group\\:web: service=nginx, password=\\<secret\\:db\\_admin\\>, token\\_count=3 · manual by alice',
    );
  });

  test('resolved targets, when the starter has them, are shown instead of the selector', () => {
    expect(runSummary(input, restart, ['web-1', 'web-2'])).toContain('on web\\-1, web\\-2:');
  });

  test('the details: a list of facts, params listed, secrets by reference', () => {
    expect(runDetails({ ...input, inventory: '/etc/runbook/inventory.yaml' }, restart)).toBe(
      [
        '- **Runbook:** restart\\-service · Restart a unit and wait for it\\. · risk medium',
        '- **Targets:** group\\:web',
        '- **Started by:** alice (manual)',
        '- **Inventory:** /etc/runbook/inventory\\.yaml',
        '',
        '**Params**',
        '',
        '- service: nginx',
        '- password: \\<secret\\:db\\_admin\\>',
        '- token\\_count: 3',
        '',
        '_Secret params show by reference, never by value._',
      ].join('\n'),
    );
  });

  test('a secret param holding anything but a reference (the secret itself, typed by mistake) is masked', () => {
    const typed = { ...input, params: { password: 'hunter2-hunter2', service: 'x' } };
    expect(runSummary(typed, restart)).not.toContain('hunter2');
    expect(runDetails(typed, restart)).not.toContain('hunter2');
    expect(runDetails(typed, restart)).toContain('- password: \\*\\*\\*');
    // A param declared with a harmless type is shown even when its name looks secret.
    expect(runSummary(typed, restart)).not.toContain('token_count');
    expect(runDetails(input, restart)).toContain('- token\\_count: 3');
  });
});

describe('with the runbook unknown', () => {
  const unknown: RunbookInput = {
    runbook: 'elsewhere',
    params: {
      service: 'nginx',
      db_password: 'hunter2-hunter2',
      apiKey: 'AKIA-SOMETHING',
      'x-auth-token': 'tok',
      ref: 'secret:vault_token',
      nested: { user: 'bob', private_key: '-----BEGIN', list: [1, 2, { token: 'deep-secret' }] },
    },
    initiator: 'alertmanager',
    trigger: 'alert',
  };

  test('values under names that look secret are masked, references shown as references, and the details say so', () => {
    const details = runDetails(unknown);
    for (const secret of ['hunter2', 'AKIA', 'tok\n', 'BEGIN', 'deep-secret'])
      expect(details + runSummary(unknown)).not.toContain(secret);
    expect(details).toContain('- db\\_password: \\*\\*\\*');
    expect(details).toContain('- apiKey: \\*\\*\\*');
    expect(details).toContain('- ref: secret\\:vault\\_token'); // not a secret-looking name: shown as given
    expect(details).toContain('- nested: \\{user\\: bob, private\\_key\\: \\*\\*\\*, list\\: \\[1, 2, \\{…\\}\\]\\}');
    expect(details).toContain(
      '_The runbook was not known where the run started: values of params whose names look secret are masked._',
    );
    // In the summary each value is cut to 40 characters.
    expect(runSummary(unknown)).toBe(
      '**elsewhere**: service=nginx, db\\_password=\\*\\*\\*, apiKey=\\*\\*\\*, x\\-auth\\-token=\\*\\*\\*, ref=secret\\:vault\\_token, nested=\\{user\\: bob, private\\_key\\: \\*\\*\\*, list\\: \\[1,… · alert by alertmanager',
    );
  });

  test.each([
    ['password', true],
    ['DB_PASS', true],
    ['api_key', true],
    ['key', true],
    ['ssh-key', true],
    ['client_secret', true],
    ['service', false],
    ['monkey', false],
    ['marker', false],
    ['hosts', false],
  ])('looksSecret(%s) is %s', (name, expected) => {
    expect(looksSecret(name)).toBe(expected);
  });

  test("a sub-runbook's rendered params show secret tokens as references", () => {
    const child: RunbookInput = { runbook: 'child', params: { word: `a ${secretToken('token')} b` } };
    expect(runDetails(child)).toContain('- word: a \\<secret\\:token\\> b');
    expect(runDetails(child)).not.toContain('\u0000');
  });
});

describe('hostile input', () => {
  const links = [
    '[click](http://evil.example/x)',
    '![pixel](http://evil.example/p.png)',
    '<img src=x onerror=alert(1)>',
    '<a href="http://evil.example">x</a>',
    'http://evil.example/autolink',
    'mailto:x@evil.example',
    '[ref]: http://evil.example',
    '{workflowId}',
    '`code` **bold** # heading',
  ];

  test.each(links)('%s stays inert in the summary and the details', (value) => {
    const hostile: RunbookInput = {
      runbook: 'x',
      params: { [value]: value, note: value },
      initiator: value,
      inventory: value,
      alert: { labels: { [value]: value } },
      windowOverride: { by: value, reason: value },
    };
    for (const text of [runSummary(hostile), runDetails(hostile)]) {
      // The format itself uses no brackets, braces, backticks or angle brackets, so none may appear unescaped: nothing
      // can open a link, an image, a tag, a code span or one of the UI's placeholders; `http:`/`mailto:` autolinks
      // need their colon.
      expect(text).not.toMatch(/(?<!\\)[<>[\]{}`]/);
      expect(text).not.toMatch(/(?<!\\)\]\(/);
      expect(text).not.toMatch(/https?:\/\/|mailto:/);
    }
  });

  test('control characters, new lines and bidi overrides show escaped, on one line', () => {
    const value = 'a\nb\r\u001b[31mred\u0000\u202eevil\u2028';
    expect(oneLine(value, 100)).toBe('a\\nb\\r\\u001b[31mred\\u0000\\u202eevil\\u2028');
    const details = runDetails({ runbook: 'x', params: { note: value } });
    expect(details).toContain('- note: a\\\\nb\\\\r\\\\u001b\\[31mred\\\\u0000\\\\u202eevil\\\\u2028');
    expect(details.split('\n').filter((l) => l.startsWith('- note'))).toHaveLength(1);
    // eslint-disable-next-line no-control-regex -- none of them may reach the summary
    expect(runSummary({ runbook: 'x', params: { note: value } })).not.toMatch(/[\n\r\u001b\u0000\u202e\u2028]/);
  });

  test('huge params are bounded: the summary to SUMMARY_MAX_BYTES, the details to DETAILS_MAX_BYTES', () => {
    const params: Record<string, unknown> = { big: 'x'.repeat(5_000_000), emoji: '😀'.repeat(100_000) };
    for (let i = 0; i < 10_000; i++) params[`p${i}`] = `value ${i}`;
    let deep: unknown = 'bottom';
    for (let i = 0; i < 100_000; i++) deep = { d: deep };
    params.deep = deep;
    const hostile: RunbookInput = { runbook: 'x', params, initiator: 'y'.repeat(100_000) };
    const started = Date.now();
    const summary = runSummary(hostile);
    const details = runDetails(hostile);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(utf8Bytes(summary)).toBeLessThanOrEqual(SUMMARY_MAX_BYTES);
    expect(utf8Bytes(details)).toBeLessThanOrEqual(DETAILS_MAX_BYTES);
    expect(summary).toMatch(/… \d+ more · manual by y+…$/);
    expect(details).toContain('- … 9963 more');
    expect(details).not.toContain('\ud83d\n'); // no emoji cut in half
  });

  test('a params value that is not an object, and missing fields, do not throw', () => {
    const odd = { runbook: 'x', params: 'nope' } as unknown as RunbookInput;
    expect(runSummary(odd)).toBe('**x** · manual by unknown');
    expect(runDetails(odd)).toBe('- **Runbook:** x\n- **Started by:** unknown (manual)');
  });
});

describe('markdown helpers', () => {
  test('mdText escapes exactly the characters the renderer takes escapes for', () => {
    expect(mdText('a-b.c:d [e](f) <g> {h} `i` *j* _k_ #l |m| &n ~o ^p $q !r +s \\t @u /v', 200)).toBe(
      'a\\-b\\.c\\:d \\[e\\]\\(f\\) \\<g\\> \\{h\\} \\`i\\` \\*j\\* \\_k\\_ \\#l \\|m\\| \\&n \\~o \\^p \\$q \\!r \\+s \\\\t @u /v',
    );
  });

  test('mdCode fences longer than any backtick run inside', () => {
    expect(mdCode('steps[0]@host-1', 100)).toBe('`steps[0]@host-1`');
    expect(mdCode('a ``b`` c', 100)).toBe('``` a ``b`` c ```');
  });

  test('fitBytes never ends on a lone backslash', () => {
    expect(fitBytes('ab\\.cdef', 6)).toBe('ab…');
    expect(fitBytes('ab\\\\cdef', 7)).toBe('ab\\\\…');
  });
});
