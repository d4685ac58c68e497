import { useState } from "preact/hooks";
import { type ApiError, enc, getJson, postJson } from "./api.ts";
import { time } from "./format.ts";
import { usePoll } from "./hooks.ts";
import type { ConnectionInfo, DesktopRow, Pool, SessionDetail } from "./types.ts";
import { ErrorLine } from "./ui.tsx";

/** The sessions on the tenant's desktops now: each desktop's sessionId, read with GET /v1/sessions/{id}. */
async function loadSessions(): Promise<SessionDetail[]> {
  const { items: pools } = await getJson<{ items: Pool[] }>("/v1/pools");
  const desktops = await Promise.all(
    pools.map((p) => getJson<{ items: DesktopRow[] }>(`/v1/pools/${enc(p.poolId)}/desktops`)),
  );
  const ids = desktops.flatMap((d) => d.items.flatMap((x) => (x.sessionId ? [x.sessionId] : [])));
  return Promise.all(ids.map((id) => getJson<SessionDetail>(`/v1/sessions/${enc(id)}`)));
}

export function SessionsPanel(props: {
  /** Connections of the sessions logged on from this console (their one-time passwords). */
  connections: ReadonlyMap<string, ConnectionInfo>;
  onConnect: (sessionId: string) => void;
}) {
  const sessions = usePoll(loadSessions, 3000, []);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const logoff = async (sessionId: string) => {
    try {
      await postJson(`/v1/sessions/${enc(sessionId)}/logoff`, {});
      setError(undefined);
      sessions.reload();
    } catch (err) {
      setError(err as ApiError);
    }
  };
  const rows = [...(sessions.data ?? [])].sort((a, b) => a.startedAt.localeCompare(b.startedAt));
  return (
    <section class="panel" data-testid="sessions-panel">
      <h2>
        Sessions <small>on the desktops now, every 3 s</small>
      </h2>
      <ErrorLine error={sessions.error ?? error} />
      {rows.length === 0 && sessions.data && <p class="muted">No active sessions.</p>}
      {rows.length > 0 && (
        <table class="grid">
          <thead>
            <tr>
              <th>user</th>
              <th>session</th>
              <th>desktop</th>
              <th>state</th>
              <th>started</th>
              <th>user data</th>
              <th>connection</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {rows.map((s) => {
              const mine = props.connections.get(s.sessionId);
              return (
                <tr key={s.sessionId} data-session={s.sessionId}>
                  <td>{s.userId}</td>
                  <td class="mono small">{s.sessionId}</td>
                  <td class="mono">{s.desktopId}</td>
                  <td>{s.state}</td>
                  <td class="nowrap">{time(s.startedAt)}</td>
                  <td class="nowrap">
                    {s.userData?.state ?? "—"}
                    {s.userData?.version !== undefined ? ` v${s.userData.version}` : ""}
                  </td>
                  <td>{connectionText(s.connection)}</td>
                  <td class="actions">
                    {mine?.protocol === "vnc" && (
                      <button type="button" onClick={() => props.onConnect(s.sessionId)}>
                        Connect
                      </button>
                    )}
                    <button type="button" class="secondary" onClick={() => logoff(s.sessionId)}>
                      Log off
                    </button>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      <p class="muted small">
        Connect is offered for sessions logged on from this console: only the logon's answer holds the
        one-time VNC password (kept in this page's memory only).
      </p>
    </section>
  );
}

function connectionText(c: ConnectionInfo | undefined): string {
  if (!c) return "—";
  if (c.protocol === "external") return c.detail;
  return `vnc ${c.host}:${c.port}${c.websocketPort ? ` (ws ${c.websocketPort})` : ""} ${c.state}`;
}
