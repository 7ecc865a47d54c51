/** localStorage, or null where there is none (Node) or where touching it throws (sandboxed frames). */
export function storage(): Storage | null {
  try {
    return typeof localStorage !== "undefined" ? localStorage : null;
  } catch {
    return null;
  }
}
