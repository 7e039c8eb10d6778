// Rill's service worker. It keeps only files that are the same for everyone and never change
// under their name: the build's files whose names carry its content hash (`/pkg/rill.<hash>.wasm`)
// and the app's icons. Pages, conversations and API answers are never intercepted, so nothing
// private is stored on the device (the server also sends them `no-store`).
"use strict";

const CACHE = "rill-static-v1";

// cargo-leptos' hash: 22 characters of URL-safe base64 between dots, not all underscores (the
// split loader's unhashed name is 22 underscores). See `carries_hash` in src/server/assets.rs.
const HASHED = /^\/pkg\/[^/]*\.(?!_{22}\.)[A-Za-z0-9_-]{22}\.[a-z]+$/;
const ICON = /^\/icons\/[a-z0-9-]+\.png$/;

function kept(url) {
  return url.origin === self.location.origin && (HASHED.test(url.pathname) || ICON.test(url.pathname));
}

// A file's name without its hash: `/pkg/rill..wasm`. Another build's copy of the same file has
// the same stem, and is dropped once the new one is stored.
function stem(pathname) {
  return pathname.replace(/\.[A-Za-z0-9_-]{22}\./, "..");
}

self.addEventListener("install", () => self.skipWaiting());

self.addEventListener("activate", (event) => {
  // Caches of earlier versions of this worker go.
  event.waitUntil(
    caches.keys().then((names) => Promise.all(names.filter((n) => n !== CACHE).map((n) => caches.delete(n)))),
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  // Anything else goes to the network as if there were no worker.
  if (!kept(url)) return;
  event.respondWith(cachedOrFetched(request, url));
});

async function cachedOrFetched(request, url) {
  const cache = await caches.open(CACHE);
  const hit = await cache.match(request);
  if (hit) return hit;
  const response = await fetch(request);
  if (response.ok && response.type === "basic") {
    await cache.put(request, response.clone());
    if (HASHED.test(url.pathname)) await dropOlderBuilds(cache, url.pathname);
  }
  return response;
}

async function dropOlderBuilds(cache, pathname) {
  const mine = stem(pathname);
  for (const request of await cache.keys()) {
    const other = new URL(request.url).pathname;
    if (other !== pathname && HASHED.test(other) && stem(other) === mine) await cache.delete(request);
  }
}
