import { defineConfig } from "vitest/config";

/** The integration tests whose desktops are real VMs. */
const desktopVmTests = [
  "test/integration/desktop-vms.test.ts",
  "test/integration/session-timeouts-vm.test.ts",
  "test/integration/power-policy-vm.test.ts",
];

export default defineConfig({
  test: {
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
        // Pools of desktops that boot (TCG): one file at a time, beside the rest, so that two
        // files' VMs never share the machine's two cores.
        test: {
          name: "desktop-vms",
          include: desktopVmTests,
          fileParallelism: false,
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
