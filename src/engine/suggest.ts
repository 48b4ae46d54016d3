// "Did you mean …?" for a name a person mistyped: the closest known name by edit distance,
// when it is close enough to be a typo (at most a third of the name's letters, and 2 at most).

/** Levenshtein distance (insertions, deletions, substitutions), case-insensitive. */
function distance(a: string, b: string): number {
  const left = a.toLowerCase();
  const right = b.toLowerCase();
  let previous = Array.from({ length: right.length + 1 }, (_, i) => i);
  for (let i = 1; i <= left.length; i++) {
    const current = [i];
    for (let j = 1; j <= right.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (left[i - 1] === right[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[right.length]!;
}

/** The known name closest to `name`, if it is near enough to be what was meant. */
export function closestName(name: string, known: Iterable<string>): string | null {
  const limit = Math.min(2, Math.max(1, Math.floor(name.length / 3)));
  let best: { name: string; distance: number } | null = null;
  for (const candidate of known) {
    const d = distance(name, candidate);
    if (d <= limit && (best === null || d < best.distance)) best = { name: candidate, distance: d };
  }
  return best?.name ?? null;
}

/** ` did you mean 'x'?` for a message, or nothing. */
export function didYouMean(name: string, known: Iterable<string>): string {
  const closest = closestName(name, known);
  return closest ? ` did you mean '${closest}'?` : "";
}
