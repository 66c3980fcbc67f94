// The floor any streaming Worker pays (issue #17): a plain-JavaScript Worker that proxies to
// UPSTREAM_BASE_URL and pipes the body through a TransformStream whose `transform` only forwards
// each chunk. tests/worker/bench.mjs runs it next to the metering Worker on the same stream.
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const headers = new Headers(request.headers);
    headers.delete("host");
    const upstream = await fetch(env.UPSTREAM_BASE_URL + url.pathname + url.search, {
      method: request.method,
      headers,
      body: request.method === "GET" || request.method === "HEAD" ? undefined : await request.arrayBuffer(),
    });
    if (!upstream.body) return upstream;
    const { readable, writable } = new TransformStream({
      transform(chunk, controller) {
        controller.enqueue(chunk);
      },
    });
    upstream.body.pipeTo(writable).catch(() => {});
    return new Response(readable, { status: upstream.status, headers: upstream.headers });
  },
};
