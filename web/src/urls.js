// Every address the dashboard asks for is relative to the page, never to the host's
// root: served at http://host:9464/ or behind a reverse proxy under a prefix
// (https://example.com/modelmon/), the API and the WebSocket are found beside the page.
// The hash (#/model/NAME) is the dashboard's own routing and takes no part.

// `path` has no leading slash: 'api/v1/models' from the page at /modelmon/ is
// /modelmon/api/v1/models.
export function apiUrl(path) {
  return new URL(path, document.baseURI).href
}

// The WebSocket beside the page, ws:// or wss:// as the page was loaded.
export function wsUrl() {
  const u = new URL('ws', document.baseURI)
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:'
  return u.href
}

// `?token=` has done its work once the page is loaded (the server answered it with its
// cookie): out of the address bar, the browser's history and any bookmark made now, the
// hash route kept.
export function forgetToken() {
  const u = new URL(location.href)
  if (!u.searchParams.has('token')) return
  u.searchParams.delete('token')
  history.replaceState(history.state, '', u.pathname + u.search + u.hash)
}
