import { defineConfig } from "vitest/config";

/**
 * Integration tests that run one file at a time once the others are done: pools of desktops that
 * boot (TCG takes both cores), and the table upgrade (DynamoDB Local builds a new index slowly
 * while dozens of other tests write to it).
 */
const desktopVmTests = [
  "test/integration/desktop-vms.test.ts",
  "test/integration/session-timeouts-vm.test.ts",
  "test/integration/power-policy-vm.test.ts",
  "test/integration/reconciler.test.ts",
];

export default defineConfig({
  test: {
    // Vitest's default on two cores is one file at a time; most integration files wait on the
    // emulators, workers and qemu-img, so three at a time finish sooner (561 -> 487 s here).
    maxWorkers: 3,
    projects: [
      { test: { name: "unit", include: ["test/unit/**/*.test.ts"] } },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          exclude: ["test/integration/qemu-hypervisor.test.ts", ...desktopVmTests],
          globalSetup: ["test/integration/global-setup.ts"],
          env: { POWERTOOLS_LOG_LEVEL: "WARN" },
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
      {
        test: {
          name: "one-at-a-time",
          include: desktopVmTests,
          fileParallelism: false,
          sequence: { groupOrder: 1 },
          globalSetup: ["test/integration/global-setup.ts"],
          env: { POWERTOOLS_LOG_LEVEL: "WARN" },
          testTimeout: 180_000,
          hookTimeout: 300_000,
        },
      },
      {
        // Real VMs under QEMU: no emulators needed, but minutes of CPU under TCG.
        test: {
          name: "vm",
          include: ["test/integration/qemu-hypervisor.test.ts"],
          testTimeout: 180_000,
          hookTimeout: 300_000,
        },
      },
      { test: { name: "e2e", include: ["test/e2e/**/*.test.ts"], testTimeout: 240_000 } },
      {
        test: {
          name: "infra",
          include: ["test/infra/**/*.test.ts"],
          testTimeout: 180_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});
