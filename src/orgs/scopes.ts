export const ALL_SCOPES = ['accounts:read', 'accounts:write', 'webhooks:read', 'webhooks:write', 'keys:write', 'audit:read', 'console'] as const;
export type Scope = (typeof ALL_SCOPES)[number];
