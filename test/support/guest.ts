import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildGuestImage, type GuestImage } from "../../guest/build.ts";

/** One guest image per machine for every test (built once, reused by later runs). */
export const guestCacheDir = process.env.PRISTINE_GUEST_CACHE ?? join(tmpdir(), "pristine-guest-cache");

export const testGuest = (log?: (line: string) => void): Promise<GuestImage> =>
  buildGuestImage({ cacheDir: guestCacheDir, ...(log ? { log } : {}) });
