// The workflow input's refusals name the field and what its holder accepts, at any depth (tried through
// `temporal workflow start`: an unknown field inside windowOverride was answered with the top-level fields).
import { inputProblems, RunbookInputSchema } from '../../dsl/run-input';

test('an unknown field is named with the fields its own object accepts', () => {
  expect(inputProblems(RunbookInputSchema, { runbook: 'x', rogue: 1 })).toEqual([
    'input.rogue: unknown field; the input accepts only runbook, source, params, inventory, initiator, trigger, alert, windowOverride, heldHosts',
  ]);
  expect(
    inputProblems(RunbookInputSchema, { runbook: 'x', windowOverride: { by: 'a', reason: 'why not', admin: true } }),
  ).toEqual(['input.windowOverride.admin: unknown field; input.windowOverride accepts only by, groups, reason']);
});
