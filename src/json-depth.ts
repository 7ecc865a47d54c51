/**
 * Whether parsed JSON nests deeper than `max` arrays/objects. JSON.parse takes nesting of any depth
 * but JSON.stringify recurses, so data echoed back (a request's reply) must be bounded on the way in
 * (docs/protocol.md#12-requests). Iterative, so the check itself cannot overflow.
 */
export function nestedDeeperThan(value: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (!v || typeof v !== "object") continue;
    if (depth + 1 > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) if (child && typeof child === "object") stack.push([child, depth + 1]);
  }
  return false;
}
