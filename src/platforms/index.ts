import { createFanslyDriver } from './fansly.js';
import { createOnlyFansDriver } from './onlyfans.js';
import type { PlatformDriver, PlatformName } from './types.js';

export { createFanslyDriver } from './fansly.js';
export { createOnlyFansDriver } from './onlyfans.js';

/** One driver per platform. Both may point at the same sandbox base URL (it serves both sides). */
export function createDrivers(opts: { onlyfansUrl: string; fanslyUrl: string }): Record<PlatformName, PlatformDriver> {
  return {
    onlyfans: createOnlyFansDriver({ baseUrl: opts.onlyfansUrl }),
    fansly: createFanslyDriver({ baseUrl: opts.fanslyUrl }),
  };
}
