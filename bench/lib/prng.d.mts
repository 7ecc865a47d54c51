// Types for prng.mjs.
export function prng(seed: number): () => number;
