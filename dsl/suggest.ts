// Pure (workflow-safe). "Did you mean" hints for misspelt names.
import { closest, distance } from 'fastest-levenshtein';

/** ` (did you mean "x"?)` when one of `candidates` is close enough to `word` to be a likely typo, else ''. */
export function didYouMean(word: string, candidates: readonly string[]): string {
  if (candidates.length === 0) return '';
  const best = closest(word, [...candidates]);
  const [a, b] = [word.toLowerCase(), best.toLowerCase()];
  const d = distance(a, b);
  const transposed = d === 2 && [...a].sort().join('') === [...b].sort().join('');
  return (d <= Math.max(1, 0.45 * Math.max(a.length, b.length)) && d < b.length) || transposed
    ? ` (did you mean "${best}"?)`
    : '';
}
