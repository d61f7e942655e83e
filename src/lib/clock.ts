/** Time as the domain sees it: injectable so tests can move it (expiry, timeouts). */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };
