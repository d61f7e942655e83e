import { readFileSync } from 'node:fs';

/** The page's static files, read once: served from FanGate's own origin (the CSP allows nothing else). */
export interface LinkAsset {
  contentType: string;
  body: string;
}

const read = (name: string) => readFileSync(new URL(`./assets/${name}`, import.meta.url), 'utf8');

export function loadLinkAssets(): { page: Record<string, LinkAsset>; embed: LinkAsset } {
  return {
    page: {
      'page.js': { contentType: 'text/javascript; charset=utf-8', body: read('page.js') },
      'page.css': { contentType: 'text/css; charset=utf-8', body: read('page.css') },
    },
    embed: { contentType: 'text/javascript; charset=utf-8', body: read('link.js') },
  };
}
