// Audit records name a step by its id, from the path or record key the workflow and activities use.
import { stepIdAt } from '../../audit/run-events';
import type { RunbookDoc } from '../../dsl/schema';

const rb = {
  steps: [
    {
      id: 'drain',
      ssh: { command: 'true' },
      rollback: [
        { id: 'undo_a', ssh: { command: 'true' } },
        { id: 'undo_b', ssh: { command: 'true' } },
      ],
    },
    {
      id: 'both',
      parallel: {
        steps: [
          { id: 'left', ssh: { command: 'true' } },
          { id: 'right', ssh: { command: 'true' }, rollback: [{ id: 'undo_right', ssh: { command: 'true' } }] },
        ],
      },
    },
  ],
  rollback: [{ id: 'page', notify: { channel: 'ops', message: 'x' } }],
} as unknown as RunbookDoc;

describe('stepIdAt', () => {
  it.each([
    ['steps[0]', 'drain'],
    ['steps[0]#2', 'drain'],
    ['steps[0]@3#1', 'drain'],
    ['steps[0].rollback[1]', 'rollback:undo_b'],
    ['steps[0].rollback', 'rollback:undo_a'],
    ['steps[1].parallel.steps[1]', 'right'],
    ['steps[1].parallel.steps[1]:host-2', 'right'],
    ['steps[1].parallel.steps[1].rollback[0]', 'rollback:undo_right'],
    ['rollback[0]', 'rollback:page'],
    ['gate', 'gate'],
  ])('%s is %s', (path, id) => expect(stepIdAt(rb, path)).toBe(id));

  it.each(['steps[9]', 'steps[0].rollback[7]', 'run', 'target', '', 'steps[1].parallel.steps[5]', 'rollback[3]'])(
    'names nothing for %j',
    (path) => expect(stepIdAt(rb, path)).toBeUndefined(),
  );

  it('names nothing before the runbook is known', () => expect(stepIdAt(undefined, 'steps[0]')).toBeUndefined());
});
