// Stable-first order: files that have not changed for the longest time come first, so an edit lands near
// the end of the prompt and only the tail after it has to be prefilled again.

export interface Dated {
  path: string;
  mtimeMs: number;
}

/** Least recently modified first, then by path; returns a new array. */
export function orderStableFirst<T extends Dated>(files: readonly T[]): T[] {
  return [...files].sort((a, b) => a.mtimeMs - b.mtimeMs || compareCodeUnits(a.path, b.path));
}

/** Ordinal string order, the same on every machine whatever its locale. */
export function compareCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
