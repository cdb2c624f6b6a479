/**
 * Which platform a run talked to: real Render (its public API) or an emulator (this folder's, usually in
 * local-platform mode on loopback). Every report says it near the top, so that a figure measured on the emulator
 * (200 ms deploy phases, a rollback in seconds) is never read as one of Render's. Pure: a URL in, a label out.
 */
import { DEFAULT_RENDER_BASE_URL } from './client';

export const RENDER_PLATFORM_KINDS = ['render', 'emulator', 'none'] as const;
export type RenderPlatformKind = (typeof RENDER_PLATFORM_KINDS)[number];

export interface RenderPlatform {
  kind: RenderPlatformKind;
  /** the Render API base URL as recorded: origin and path only, never userinfo, query or fragment (null: none) */
  apiUrl: string | null;
  /** one line for people: "Render (api.render.com)", "emulator (local platform at http://127.0.0.1:PORT)", ... */
  label: string;
}

const RENDER_API = new URL(DEFAULT_RENDER_BASE_URL);

/**
 * Classifies a Render API base URL. Render is exactly its public API over https (the client's default);
 * anything else (a loopback local platform, a proxy, a typo) is not Render, so it is reported as an emulator,
 * with where it was. A URL that does not parse says so rather than guessing.
 */
export function renderPlatformOf(apiUrl: string): RenderPlatform {
  let url: URL;
  try {
    url = new URL(apiUrl);
  } catch {
    return { kind: 'emulator', apiUrl: null, label: 'emulator or unknown (the Render API URL given does not parse, so not api.render.com)' };
  }
  const clean = withoutCredentials(url);
  if (url.protocol === RENDER_API.protocol && url.host === RENDER_API.host) return { kind: 'render', apiUrl: clean, label: `Render (${RENDER_API.host})` };
  const where = loopbackHost(url.hostname) ? 'local platform' : `not ${RENDER_API.host}: a Render API stand-in`;
  return { kind: 'emulator', apiUrl: clean, label: `emulator (${where} at ${url.origin})` };
}

/**
 * No Render API in the run: nothing on a platform was read or changed, only the service was measured. Its address
 * says whether it was local (loopback: certainly not Render); otherwise where it runs is not known.
 */
export function noRenderPlatform(serviceUrl: string): RenderPlatform {
  let where = 'where the service runs is not known';
  try {
    const url = new URL(serviceUrl);
    where = loopbackHost(url.hostname) ? `the service at ${url.origin} is on loopback: not Render` : `the service at ${url.origin} was measured; where it runs is not known`;
  } catch {
    // an unparsable service URL: say nothing of it
  }
  return { kind: 'none', apiUrl: null, label: `no Render API (${where})` };
}

/** An in-process Render stand-in (tests' fakes): no URL, and certainly not Render. */
export const IN_PROCESS_RENDER: RenderPlatform = { kind: 'emulator', apiUrl: null, label: 'emulator (an in-process Render stand-in, no HTTP API)' };

function withoutCredentials(url: URL): string {
  const clean = new URL(url.href);
  clean.username = '';
  clean.password = '';
  clean.search = '';
  clean.hash = '';
  return clean.href.replace(/\/+$/, '');
}

function loopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return host === 'localhost' || host.endsWith('.localhost') || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
}
