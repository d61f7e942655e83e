export const ALL_SCOPES = ['accounts:read', 'accounts:write', 'webhooks:read', 'webhooks:write', 'keys:write'] as const;
export type Scope = (typeof ALL_SCOPES)[number];
