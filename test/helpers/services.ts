import { existsSync } from "node:fs";

/**
 * Outside CI a suite whose service is missing skips with one line saying what to install; in CI
 * (CI=true) a missing service is a failure, never a skip.
 */
export function requireService(name: string, available: boolean, install: string): boolean {
  if (available) return true;
  if (process.env.CI === "true") throw new Error(`${name} is required in CI but missing: ${install}`);
  console.warn(`skipping: ${name} not available (${install})`);
  return false;
}

export const CHROMIUM = "/usr/bin/chromium";
export const hasChromium = () => existsSync(CHROMIUM);
export const hasNginx = () => existsSync("/usr/sbin/nginx");
