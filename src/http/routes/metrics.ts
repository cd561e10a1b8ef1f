/*
 * GET /metrics in Prometheus text format: open, behind credentials, or off,
 * as the `metrics` config key says.
 */
import type Router from '@koa/router';
import type { Context } from 'koa';
import { scrape, type Registry } from '../../metrics.js';
import { reqCredentials } from '../middleware/auth.js';

export type MetricsAccess = 'public' | 'auth' | 'off';

export function mountMetrics(router: Router, registry: Registry, access: MetricsAccess): void {
  if (access === 'off') return;
  const steps = access === 'auth' ? [reqCredentials('reading metrics')] : [];
  router.get('GetMetrics', '/metrics', ...steps, async (ctx: Context) => {
    ctx.type = registry.contentType;
    ctx.body = await scrape(registry);
  });
}
