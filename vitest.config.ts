import { defineConfig } from "vitest/config";

// The deploy-storm suite measures how 1,000 clients spread over two processes: run beside the other
// suites on two cores, its processes starve and the timers it measures bunch. It runs alone, after
// the rest (projects of a higher groupOrder start once the lower ones are done).
const ALONE = ["test/deploy-storm.test.ts"];

const shared = { testTimeout: 60_000, hookTimeout: 60_000, pool: "forks" as const };

export default defineConfig({
  test: {
    maxWorkers: 2,
    reporters: ["default", "./test/helpers/summary-reporter.ts"],
    projects: [
      { test: { ...shared, name: "suites", include: ["test/**/*.test.ts"], exclude: ALONE, sequence: { groupOrder: 0 } } },
      { test: { ...shared, name: "alone", include: ALONE, sequence: { groupOrder: 1 } } },
    ],
  },
});
