// Pure (workflow-safe). "Did you mean" hints for misspelt names.
import { closest, distance } from 'fastest-levenshtein';

/** ` (did you mean "x"?)` when one of `candidates` is close enough to `word` to be a likely typo, else ''. */
export function didYouMean(word: string, candidates: readonly string[]): string {
  if (candidates.length === 0) return '';
  const best = closest(word, [...candidates]);
  return distance(word.toLowerCase(), best.toLowerCase()) <= Math.max(2, Math.ceil(word.length * 0.45)) ? ` (did you mean "${best}"?)` : '';
}
