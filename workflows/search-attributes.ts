// Workflow side (pure; also imported by the Node side to register the attributes with the server).
// The custom search attributes the engine sets on every run, so runs can be filtered in the UI and the CLI.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const RunbookName = defineSearchAttributeKey('RunbookName', SearchAttributeType.KEYWORD);
export const RunbookStatus = defineSearchAttributeKey('RunbookStatus', SearchAttributeType.KEYWORD);
export const RunbookTargets = defineSearchAttributeKey('RunbookTargets', SearchAttributeType.KEYWORD_LIST);
export const Trigger = defineSearchAttributeKey('Trigger', SearchAttributeType.KEYWORD);
export const Initiator = defineSearchAttributeKey('Initiator', SearchAttributeType.KEYWORD);

/** Every key, with the type name the Temporal CLI's `--search-attribute NAME=TYPE` flag expects. */
export const SEARCH_ATTRIBUTES = [
  { key: RunbookName, cliType: 'Keyword' },
  { key: RunbookStatus, cliType: 'Keyword' },
  { key: RunbookTargets, cliType: 'KeywordList' },
  { key: Trigger, cliType: 'Keyword' },
  { key: Initiator, cliType: 'Keyword' },
] as const;
