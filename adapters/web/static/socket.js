// The one websocket to the bot: each frame it sends goes to its handler; when it drops, it
// reconnects (waiting longer each time, up to 5 s) and the server says hello again.
import { showNotice, state } from "./page.js";

let socket = null;
let retryMs = 500;

export function send(frame) {
  socket.send(JSON.stringify(frame));
}

// handlers: {frame type: function(frame)}; showStatus(online) when the socket opens or drops.
export function connect(handlers, showStatus) {
  const query = state.conversation ? `?conversation=${encodeURIComponent(state.conversation)}` : "";
  const opened = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws${query}`);
  socket = opened;
  opened.addEventListener("open", () => { state.connected = true; retryMs = 500; showStatus(true); });
  opened.addEventListener("message", (message) => {
    const event = JSON.parse(message.data);
    if (Object.hasOwn(handlers, event.type)) handlers[event.type](event);
  });
  opened.addEventListener("close", (close) => {
    if (socket !== opened) return;
    state.connected = false;
    showStatus(false);
    if (close.code === 1009) showNotice("That message was too large to send.");
    setTimeout(() => connect(handlers, showStatus), retryMs);
    retryMs = Math.min(retryMs * 2, 5000);
  });
}
