/**
 * Does the base URL the canary measures belong to the Render service it would roll back? A mistyped URL that
 * points at another service (or at nothing) must never lead to acting on this one. Pure: the caller reads the
 * service's URL and custom domains from the Render API.
 */
export type TargetCheck = { ok: true; matched: string } | { ok: false; reason: string };

/** host[:port] of a URL, lower-cased, with the scheme's default port dropped; null when not an http(s) URL. */
function hostOf(url: string): string | null {
  try {
    const parsed = new URL(url);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return null;
    return parsed.host.toLowerCase();
  } catch {
    return null;
  }
}

export function checkTargetBelongsToService(
  baseUrl: string,
  service: { id: string; url: string | undefined; customDomains: readonly string[] },
): TargetCheck {
  const target = hostOf(baseUrl);
  if (target === null) return { ok: false, reason: `--base-url ${baseUrl} is not an http(s) URL` };
  const known = [
    ...(service.url ? [hostOf(service.url)] : []),
    // Custom domains are served on the default ports of both schemes.
    ...service.customDomains.map((name) => name.toLowerCase()),
  ].filter((host): host is string => host !== null);
  const matched = known.find((host) => host === target);
  if (matched) return { ok: true, matched };
  return {
    ok: false,
    reason:
      `--base-url host ${target} is not service ${service.id}'s (${known.length > 0 ? known.join(', ') : 'it has no URL'}): ` +
      'refusing to judge one service and act on another. Check --base-url and --render-service-id.',
  };
}
