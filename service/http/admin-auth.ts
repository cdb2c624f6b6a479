/**
 * Bearer ADMIN_TOKEN for /api/admin/*. Both sides are hashed first, so timingSafeEqual always compares
 * equal-length digests and the comparison time says nothing about the token's length or content.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';

export const ADMIN_DISABLED_MESSAGE = 'Admin endpoints are disabled: set ADMIN_TOKEN to enable them';

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

export function tokenMatches(expected: string, presented: string): boolean {
  return timingSafeEqual(digest(expected), digest(presented));
}

export function bearerToken(header: string | undefined): string | null {
  if (!header) return null;
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  return match ? match[1] : null;
}

export function requireAdminToken(adminToken: string | undefined): RequestHandler {
  const expected = adminToken;
  return (req, res, next) => {
    if (!expected) {
      res.status(403).json({ error: ADMIN_DISABLED_MESSAGE });
      return;
    }
    const presented = bearerToken(req.headers.authorization);
    if (presented === null || !tokenMatches(expected, presented)) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="admin"');
      res.status(401).json({ error: presented === null ? 'Missing bearer token (Authorization: Bearer <ADMIN_TOKEN>)' : 'Invalid admin token' });
      return;
    }
    next();
  };
}
