import type { ApiDeps } from '../../deps.ts';
import type { AnyRoute } from '../define-route.ts';
import { adminAuditRoutes } from './admin-audit.ts';
import { adminUserRoutes } from './admin-users.ts';
import { gdprRoutes } from './gdpr.ts';
import { meRoutes } from './me.ts';
import { recordRoutes } from './records.ts';

/** Every route of the API: the one table behind validation, authorization and /openapi.json. */
export function apiRoutes({ api, config }: Pick<ApiDeps, 'api' | 'config'>): AnyRoute[] {
  return [
    ...meRoutes(),
    ...gdprRoutes({ gdpr: api.gdpr, erasureMaxAge: config.ttl.recentAuth }),
    ...recordRoutes({ records: api.records }),
    ...adminUserRoutes({ userAdmin: api.userAdmin }),
    ...adminAuditRoutes({ auditLog: api.auditLog }),
  ];
}
