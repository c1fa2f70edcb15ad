import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: [
      "telemetry/**/*.test.ts",
      "broker/src/**/*.test.ts",
      "policy-server/src/**/*.test.ts",
      "driver/**/*.test.ts",
      "test/**/*.test.ts",
    ],
    exclude: ["**/node_modules/**"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
  },
});
