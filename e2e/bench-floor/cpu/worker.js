// The floor of `scripts/bench cpu`: for each request the bench measures on our Worker, the least a Worker can do to
// give the same answer, the same bytes and the same platform calls: a constant body for /healthz and the stream
// list, the Cache API for a cached playlist or segment, R2 (then a Cache API put, as ours does) for a segment miss.
// The bench seeds the bodies it read from our Worker (PUT /__seed/<name>), then measures both Workers' workerd CPU
// per request. What is left between the two is our Worker's own cost (the wasm, workers-rs's glue, our logic).
// Not part of the product; never deployed.

const bodies = new Map(); // name -> { body: ArrayBuffer, headers: [[k, v]] }

function answer(name) {
  const seeded = bodies.get(name);
  if (!seeded) return new Response("not seeded", { status: 503 });
  return new Response(seeded.body, { headers: seeded.headers });
}

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    if (request.method === "PUT" && url.pathname.startsWith("/__seed/")) {
      // name, and for cache/r2 seeds the URL path the answer is cached under.
      const name = url.pathname.slice("/__seed/".length);
      const body = await request.arrayBuffer();
      const headers = [["content-type", request.headers.get("content-type") || "application/octet-stream"]];
      bodies.set(name, { body, headers });
      const at = url.searchParams.get("at");
      if (url.searchParams.get("into") === "cache" && at) {
        const cached = new Response(body, { headers: [...headers, ["cache-control", "public, max-age=86400"]] });
        await caches.default.put(new URL(at, url.origin).toString(), cached);
      }
      if (url.searchParams.get("into") === "r2") {
        await env.MEDIA.put(name, body);
      }
      return new Response(null, { status: 204 });
    }
    switch (url.pathname) {
      case "/healthz":
        return answer("healthz");
      case "/api/streams":
        return answer("streams");
    }
    if (url.pathname.startsWith("/hls/")) {
      if (url.searchParams.has("miss")) {
        // A segment that is in no cache: read it from R2 and keep a copy, as ours does on a miss.
        const object = await env.MEDIA.get("segment");
        if (!object) return new Response("not seeded", { status: 503 });
        const response = new Response(object.body, {
          headers: { "content-type": "video/mp2t", "cache-control": "public, max-age=86400, immutable" },
        });
        ctx.waitUntil(caches.default.put(request, response.clone()));
        return response;
      }
      const hit = await caches.default.match(request);
      return hit || new Response("not cached", { status: 404 });
    }
    return new Response("no such route", { status: 404 });
  },
};
