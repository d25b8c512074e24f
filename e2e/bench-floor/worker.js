// The platform floor for `scripts/bench fanout`: a do-nothing chat broadcaster as a Durable Object (the hibernation
// WebSocket API, as our ChatRoom uses), run by its own `wrangler dev` beside the real stack. Every socket gets a
// welcome; every chat frame any socket sends goes back to every socket as one chat frame of the room's shape, with
// nothing stored, checked or counted. The bench measures it with the same client as the room: what is left between
// the two is our room's own cost; what the platform floor shows is workerd's and wrangler dev's on this machine.
// Not part of the product; never deployed.

const WELCOME = JSON.stringify({
  type: "welcome",
  you: { id: null, username: null, role: "anonymous" },
  history: [],
  viewers: 0,
  status: "live",
  slow_mode_seconds: 0,
});

export class Floor {
  constructor(ctx) {
    this.ctx = ctx;
    this.next = 1;
  }

  async fetch(request) {
    if (request.headers.get("upgrade") !== "websocket") {
      return new Response("a WebSocket endpoint", { status: 426 });
    }
    const [client, server] = Object.values(new WebSocketPair());
    this.ctx.acceptWebSocket(server);
    server.send(WELCOME);
    return new Response(null, { status: 101, webSocket: client });
  }

  webSocketMessage(_ws, message) {
    let text;
    try {
      text = JSON.parse(message).text;
    } catch {
      return;
    }
    const frame = JSON.stringify({
      type: "chat",
      id: String(this.next++),
      user: { id: "aaaaaaaaaaaaaaaa", username: "fanout" },
      text,
      ts: "2026-01-01T00:00:00.000Z",
    });
    for (const socket of this.ctx.getWebSockets()) {
      try {
        socket.send(frame);
      } catch {
        // A socket closing meanwhile refuses the frame.
      }
    }
  }

  webSocketClose(ws, code) {
    try {
      ws.close(code === 1005 ? 1000 : code, "bye");
    } catch {
      // Already closed.
    }
  }
}

export default {
  fetch(request, env) {
    return env.FLOOR.get(env.FLOOR.idFromName("floor")).fetch(request);
  },
};
