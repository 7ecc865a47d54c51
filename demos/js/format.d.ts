// Types for the tests that import the demo pages' plain-JS formats.
export function ms(v: number | null | undefined): string;
export function bytes(v: number): string;
export function count(v: number | null | undefined): string;
export function clock(date?: Date): string;
