import { describe, expect, it } from "vitest";
import { defaultQuotas } from "../../shared/domain/quotas.ts";
import { quotaDefaultsFromEnv, quotaEnvironment } from "../../shared/quota-config.ts";

const GiB = 1024 ** 3;

describe("default quotas from the environment", () => {
  it("are the built-in defaults when nothing is set", () => {
    expect(quotaDefaultsFromEnv({})).toEqual(defaultQuotas);
  });

  it("read GiB as bytes, and read back what quotaEnvironment writes", () => {
    const env = {
      PRISTINE_QUOTA_DESKTOPS: "20",
      PRISTINE_QUOTA_PROVISIONED_GIB: "1.5",
      PRISTINE_QUOTA_IMAGE_GIB: "8",
    };
    const quotas = quotaDefaultsFromEnv(env);
    expect(quotas).toEqual({
      maxDesktops: 20,
      maxProvisionedBytes: 1.5 * GiB,
      maxImages: defaultQuotas.maxImages,
      maxImageBytes: 8 * GiB,
    });
    expect(quotaDefaultsFromEnv(quotaEnvironment(quotas))).toEqual(quotas);
  });

  it("refuse a typo instead of running without a limit", () => {
    expect(() => quotaDefaultsFromEnv({ PRISTINE_QUOTA_DESKTOPS: "lots" })).toThrow(
      /PRISTINE_QUOTA_DESKTOPS/,
    );
    expect(() => quotaDefaultsFromEnv({ PRISTINE_QUOTA_IMAGES: "-1" })).toThrow(/PRISTINE_QUOTA_IMAGES/);
  });
});
