// Pure (workflow-safe). The one line that describes a step's rendered action, the same in its change record
// (audit/events.ts) and in the summary the Web UI shows of its activity (workflows/summaries.ts): secret references
// stay references (<secret:NAME>); known secret values are masked by the record's writer.
import { maskSecrets } from '../dsl/expr';
import type { RenderedAction } from '../dsl/render';

/** The action as a change record describes it. */
export function actionText(action: RenderedAction): string {
  const text = (() => {
    switch (action.kind) {
      case 'ssh':
        if (action.upload) return `upload ${action.upload.src} -> ${action.upload.dest} (mode ${action.upload.mode})`;
        return `${action.sudo ? `sudo${action.user ? ` -u ${action.user}` : ''} ` : ''}${action.command ?? action.script ?? ''}`;
      case 'http':
        return `${action.method} ${action.url}`;
      case 'sleep':
        return `sleep ${action.duration}`;
      case 'approval':
        return `approval: ${action.message}`;
      case 'notify':
        return `notify ${action.channel}: ${action.message}`;
      case 'runbook':
        return `runbook ${action.name} ${JSON.stringify(action.params)}`;
      case 'parallel':
        return 'parallel';
    }
  })();
  return maskSecrets(text);
}
