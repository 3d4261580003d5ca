// Node side. Builds the workflow bundle ahead of time (part of `npm run build`), so workers load it instead of
// running webpack at start: faster start, and a smaller resident worker (webpack's memory is never needed).
import fs from 'node:fs';
import path from 'node:path';
import { bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { FAILURE_CONVERTER_PATH } from '../common/codec';

/** Where `npm run build` puts the bundle, next to the compiled code. */
export const PREBUILT_BUNDLE = path.join(__dirname, '..', 'workflow-bundle.js');

/**
 * The workflow code (workflows/index.ts) bundled with the project's failure converter, as workers and tests load
 * it. The bundler says nothing but its errors, and those only to `onError`.
 */
export function bundleWorkflows(
  onError: (message: string) => void = () => undefined,
): Promise<WorkflowBundleWithSourceMap> {
  const noop = () => undefined;
  return bundleWorkflowCode({
    workflowsPath: require.resolve('../workflows'),
    failureConverterPath: FAILURE_CONVERTER_PATH,
    logger: { log: noop, trace: noop, debug: noop, info: noop, warn: noop, error: onError },
  });
}

export async function writeWorkflowBundle(out = PREBUILT_BUNDLE): Promise<number> {
  const { code } = await bundleWorkflows((m) => process.stderr.write(`${m}\n`));
  fs.writeFileSync(out, code);
  return code.length;
}

if (require.main === module) {
  writeWorkflowBundle().then(
    (n) => process.stderr.write(`workflow bundle: ${PREBUILT_BUNDLE} (${Math.round(n / 1024)} KiB)\n`),
    (err: unknown) => {
      process.stderr.write(`cannot bundle the workflows: ${(err as Error).message}\n`);
      process.exitCode = 1;
    },
  );
}
