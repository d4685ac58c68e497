import RFB from "@novnc/novnc";
import { useEffect, useRef, useState } from "preact/hooks";
import type { ConnectionInfo } from "./types.ts";

type Vnc = Extract<ConnectionInfo, { protocol: "vnc" }>;

/** A desktop's screen, live, over its VM's WebSocket VNC port (noVNC), with the logon's one-time password. */
export function VncViewer(props: { sessionId: string; connection: Vnc; onClose: () => void }) {
  const screen = useRef<HTMLDivElement>(null);
  const [status, setStatus] = useState("connecting");
  const { host, websocketPort, password } = props.connection;
  useEffect(() => {
    const el = screen.current;
    if (!el || !websocketPort) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const rfb = new RFB(el, `${scheme}://${host}:${websocketPort}`, {
      credentials: password ? { password } : {},
    });
    rfb.scaleViewport = true;
    rfb.background = "#111";
    const on = (name: string, fn: (e: Event) => void) => rfb.addEventListener(name, fn);
    on("connect", () => setStatus("connected"));
    on("disconnect", (e) => {
      const clean = (e as CustomEvent<{ clean: boolean }>).detail?.clean;
      setStatus(clean ? "disconnected" : "connection lost");
    });
    on("credentialsrequired", () => setStatus("the desktop asks for a password: log on again for a new one"));
    on("securityfailure", (e) => {
      const reason = (e as CustomEvent<{ reason?: string }>).detail?.reason;
      setStatus(`refused${reason ? `: ${reason}` : ""}`);
    });
    return () => rfb.disconnect();
  }, [host, websocketPort, password]);
  return (
    <section class="panel vnc" data-testid="vnc">
      <h2>
        Screen of <span class="mono">{props.sessionId}</span> <small>{status}</small>
        <button type="button" class="secondary right" onClick={props.onClose}>
          Close
        </button>
      </h2>
      {websocketPort ? (
        <div class="vnc-screen" ref={screen} />
      ) : (
        <p class="muted">This desktop serves no WebSocket VNC port.</p>
      )}
    </section>
  );
}
