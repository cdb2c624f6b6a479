/**
 * GET /observability: the runbook's "Observability UI (In-App)". The page is public and static; it reads the
 * service's own public endpoints from the browser. It is served even while the service is starting, so the page
 * can say so (the endpoints answer 503).
 */
import { randomBytes } from 'node:crypto';
import type { RequestHandler } from 'express';
import { renderObservabilityPage } from './page';

export const OBSERVABILITY_PATH = '/observability';

/**
 * Strict headers: only this response's inline style and script run (per-response nonce, no 'unsafe-inline'),
 * fetches go to this origin only, nothing else loads, the page cannot be framed, and no referrer leaves it.
 */
export function observabilityHeaders(nonce: string): Record<string, string> {
  const policy = [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src 'nonce-${nonce}'`,
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
    // The page writes the DOM with textContent only; Trusted Types turns any innerHTML-style sink into an error.
    "require-trusted-types-for 'script'",
    "trusted-types 'none'",
  ].join('; ');
  return {
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Security-Policy': policy,
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'X-Frame-Options': 'DENY',
    'Cross-Origin-Opener-Policy': 'same-origin',
    'Cross-Origin-Resource-Policy': 'same-origin',
    'Permissions-Policy': 'camera=(), microphone=(), geolocation=(), payment=(), usb=()',
    // A nonce must never be replayed from a cache.
    'Cache-Control': 'no-store',
  };
}

/**
 * GET OBSERVABILITY_PATH's handler. Mounted as a route of the app (app.ts), not as a Router of its own: a mounted
 * Router is entered by every request the app gets, the memory reads included (issue 29's hit path).
 */
export const observabilityPage: RequestHandler = (_req, res) => {
  const nonce = randomBytes(18).toString('base64');
  res.set(observabilityHeaders(nonce)).send(renderObservabilityPage(nonce));
};
